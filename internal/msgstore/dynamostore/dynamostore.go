// Package dynamostore is the claim-check message store on Amazon DynamoDB
// (docs/job.md): the item with key id holds the job's JSON in the
// string attribute body.
package dynamostore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/segpub/segpub/internal/msgstore"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Store is a DynamoDB table of job bodies.
type Store struct {
	client API
	table  string
}

// New returns a Store on table.
func New(client API, table string) (*Store, error) {
	if client == nil || table == "" {
		return nil, errors.New("dynamostore: a client and a table name are required")
	}
	return &Store{client: client, table: table}, nil
}

// Get reads an item with a consistent read: the submitter wrote it just
// before enqueueing the claim check. DynamoDB items are at most 400 KB, so
// the cap is checked once the item is read.
func (s *Store) Get(ctx context.Context, id string, maxBytes int64) ([]byte, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get message %s from %s: %w", id, s.table, err)
	}
	if out.Item == nil {
		return nil, msgstore.ErrNotFound
	}
	body, ok := out.Item["body"].(*types.AttributeValueMemberS)
	if !ok {
		return nil, fmt.Errorf("message %s in %s has no string attribute body: %w", id, s.table, msgstore.ErrMalformed)
	}
	if int64(len(body.Value)) > maxBytes {
		return nil, fmt.Errorf("message %s in %s is %d bytes: %w", id, s.table, len(body.Value), msgstore.ErrTooLarge)
	}
	return []byte(body.Value), nil
}

// Put writes an item.
func (s *Store) Put(ctx context.Context, id string, body []byte) error {
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			"id": &types.AttributeValueMemberS{Value: id}, "body": &types.AttributeValueMemberS{Value: string(body)},
		},
	})
	if err != nil {
		return fmt.Errorf("put message %s to %s: %w", id, s.table, err)
	}
	return nil
}
