package dynamostore

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/msgstore"
)

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := dynamodb.NewFromConfig(awstest.Config(t))
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("messages"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(client, "messages")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "m-123", 1<<20); !errors.Is(err, msgstore.ErrNotFound) {
		t.Fatalf("missing item: %v", err)
	}
	body := `{"version":1,"request_id":"r","campaign":{"audience":{"user_ids":["a","b"]}}}`
	if err := s.Put(ctx, "m-123", []byte(body)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "m-123", 1<<20)
	if err != nil || string(got) != body {
		t.Fatalf("got %q %v", got, err)
	}
	// Over the job size cap: refused, not returned.
	if got, err := s.Get(ctx, "m-123", int64(len(body))-1); !errors.Is(err, msgstore.ErrTooLarge) || got != nil {
		t.Fatalf("over the cap: got %d bytes, %v", len(got), err)
	}
	if _, err := s.Get(ctx, "m-123", int64(len(body))); err != nil {
		t.Fatalf("at the cap: %v", err)
	}
}

// itemAPI returns one item, whatever is asked.
type itemAPI struct {
	API
	item map[string]types.AttributeValue
}

func (a itemAPI) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{Item: a.item}, nil
}

// An item without a string body never holds a job: ErrMalformed, which the
// worker rejects instead of retrying.
func TestMalformedItem(t *testing.T) {
	t.Parallel()
	for name, item := range map[string]map[string]types.AttributeValue{
		"no body":     {"id": &types.AttributeValueMemberS{Value: "m"}},
		"number body": {"id": &types.AttributeValueMemberS{Value: "m"}, "body": &types.AttributeValueMemberN{Value: "1"}},
	} {
		s, err := New(itemAPI{item: item}, "messages")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(context.Background(), "m", 1<<20); !errors.Is(err, msgstore.ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
