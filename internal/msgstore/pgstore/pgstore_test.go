package pgstore

import (
	"context"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/msgstore/msgstoretest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	msgstoretest.Run(t, func(t *testing.T) msgstoretest.Harness {
		table := dbtest.NewProjectID() + "_messages"
		s, err := New(context.Background(), dbtest.Pool(t), table)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dbtest.Exec(t, `DROP TABLE "`+table+`"`) })
		// body is NOT NULL text: no item can lack a body.
		return msgstoretest.Harness{Store: s}
	})
}

func TestBadTableName(t *testing.T) {
	t.Parallel()
	if _, err := New(context.Background(), dbtest.Pool(t), `x"; DROP`); err == nil {
		t.Fatal("bad table name accepted")
	}
}
