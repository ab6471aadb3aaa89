package point_test

import "coffer.dev/coffer/store/internal/fuzzseed"

// Seeds are written by TestWriteFuzzSeeds:
//
//	COFFER_WRITE_SEEDS=1 go test -run '^TestWriteFuzzSeeds$' ./store/point
type fuzzSeed = fuzzseed.Seed

var (
	seed                   = fuzzseed.New
	addSeeds               = fuzzseed.Add
	skipUnlessWritingSeeds = fuzzseed.SkipUnlessWriting
	writeFuzzSeeds         = fuzzseed.Write
)
