package memstore

import "fmt"

// WithHashMask narrows the key hashes to mask, for tests: with 0, every key
// hashes to 0, lands in the first shard and shares one map slot, so every
// operation walks the collision chain.
func WithHashMask(mask uint64) Option { return func(c *config) { c.hashMask = &mask } }

// CheckInvariants checks the bookkeeping of every shard: the map, the
// heaps and the scopes' counts agree.
func (s *Store) CheckInvariants() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		err := sh.check(s.perShard)
		sh.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
	}
	return nil
}

func (sh *shard) check(limit int) error {
	if sh.n > limit {
		return fmt.Errorf("%d records; bound %d", sh.n, limit)
	}
	counts := map[*scope]int{}
	done := map[*scope]int{}
	n := 0
	for h, head := range sh.m {
		for r := head; r != nil; r = r.next {
			n++
			if r.hash != h {
				return fmt.Errorf("record %q in slot %x; hash %x", r.key, h, r.hash)
			}
			if r.sc == nil || sh.scopes[r.sc.id] != r.sc {
				return fmt.Errorf("record %q: scope not in the shard", r.key)
			}
			counts[r.sc]++
			if r.done {
				done[r.sc]++
				if r.index < 0 || r.index >= len(sh.completed) || sh.completed[r.index].r != r ||
					r.sindex < 0 || r.sindex >= len(r.sc.completed) || r.sc.completed[r.sindex].r != r {
					return fmt.Errorf("completed record %q: heap indexes wrong", r.key)
				}
			} else if r.index < 0 || r.index >= len(sh.pending) || sh.pending[r.index].r != r {
				return fmt.Errorf("pending record %q: heap index wrong", r.key)
			}
		}
	}
	if n != sh.n || n != len(sh.pending)+len(sh.completed) {
		return fmt.Errorf("n = %d; map holds %d, heaps %d+%d", sh.n, n, len(sh.pending), len(sh.completed))
	}
	if len(sh.scopes) != len(sh.byCount) || len(sh.scopes) != len(counts) {
		return fmt.Errorf("%d scopes in the map, %d in the heap, %d holding records", len(sh.scopes), len(sh.byCount), len(counts))
	}
	for i, sc := range sh.byCount {
		if sc.index != i || sc.n != counts[sc] || len(sc.completed) != done[sc] {
			return fmt.Errorf("scope %q: index %d at %d, n %d for %d records, %d completed for %d",
				sc.id, sc.index, i, sc.n, counts[sc], len(sc.completed), done[sc])
		}
		if i > 0 && sh.byCount[(i-1)/2].n < sc.n {
			return fmt.Errorf("scope heap out of order at %d", i)
		}
		for j := range sc.completed {
			if j > 0 && sc.completed[(j-1)/2].exp > sc.completed[j].exp {
				return fmt.Errorf("scope %q: completed heap out of order at %d", sc.id, j)
			}
		}
	}
	for _, rh := range []recordHeap{sh.pending, sh.completed} {
		for j := 1; j < len(rh); j++ {
			if rh[(j-1)/2].exp > rh[j].exp {
				return fmt.Errorf("record heap out of order at %d", j)
			}
		}
	}
	return nil
}

// CompletedCap is the capacity of the completed-record heaps of the scope
// named id, over all shards.
func (s *Store) CompletedCap(id string) int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if sc := sh.scopes[id]; sc != nil {
			n += cap(sc.completed)
		}
		sh.mu.Unlock()
	}
	return n
}
