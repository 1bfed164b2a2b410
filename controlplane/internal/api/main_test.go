package api

import (
	"testing"

	"go.uber.org/goleak"
)

// The API tests start gRPC servers, job engines and stream goroutines:
// every one must be gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
