package memstore

// WithHashMask narrows the key hashes to mask, for tests: with 0, every key
// hashes to 0, lands in the first shard and shares one map slot, so every
// operation walks the collision chain.
func WithHashMask(mask uint64) Option { return func(c *config) { c.hashMask = &mask } }
