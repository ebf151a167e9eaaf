package dynamostore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/msgstore/msgstoretest"
)

var n atomic.Int64

func TestStore(t *testing.T) {
	t.Parallel()
	msgstoretest.Run(t, func(t *testing.T) msgstoretest.Harness {
		ctx := context.Background()
		client := dynamodb.NewFromConfig(awstest.Config(t))
		table := fmt.Sprintf("messages-%d", n.Add(1))
		_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(client, table)
		if err != nil {
			t.Fatal(err)
		}
		// An item without a string body never holds a job: ErrMalformed,
		// which the worker rejects instead of retrying.
		plant := func(body types.AttributeValue) func(ctx context.Context, id string) error {
			return func(ctx context.Context, id string) error {
				item := map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}
				if body != nil {
					item["body"] = body
				}
				_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
				return err
			}
		}
		return msgstoretest.Harness{Store: s, Malformed: map[string]func(context.Context, string) error{
			"no body":     plant(nil),
			"number body": plant(&types.AttributeValueMemberN{Value: "1"}),
			"binary body": plant(&types.AttributeValueMemberB{Value: []byte(`{"a":1}`)}),
		}}
	})
}
