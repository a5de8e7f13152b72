package store

import (
	"context"
	"fmt"
)

// CountUnsent counts the messages still to deliver (due or waiting for a
// retry; given-up ones excluded), for the outbox gauge read at each scrape.
// outbox_unsent_idx holds only the rows not sent yet: the count does not
// grow with the delivered history.
func (s *Store) CountUnsent(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND given_up_at IS NULL`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("failed to count unsent messages: %w", err)
	}
	return n, nil
}
