package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestCertDue(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	days := func(d int) *timestamppb.Timestamp { return timestamppb.New(now.Add(time.Duration(d) * 24 * time.Hour)) }
	for _, tt := range []struct {
		name              string
		served, installed *forlockv1.CertificateInfo
		want              string
	}{
		{"nothing known", nil, nil, ""},
		{"60 days left, never installed by us", &forlockv1.CertificateInfo{NotAfter: days(60)}, nil, ""},
		{"29 days left", &forlockv1.CertificateInfo{NotAfter: days(29)}, nil, "expires in 696h0m0s (< 30 days)"},
		{"expired", &forlockv1.CertificateInfo{NotAfter: days(-1)}, nil, "expires in -24h0m0s (< 30 days)"},
		{"installed 89 days ago", &forlockv1.CertificateInfo{NotAfter: days(300)}, &forlockv1.CertificateInfo{RotatedAt: days(-89)}, ""},
		{"installed 90 days ago", &forlockv1.CertificateInfo{NotAfter: days(300)}, &forlockv1.CertificateInfo{RotatedAt: days(-90)}, "installed 90 days ago"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, certDue(now, tt.served, tt.installed))
		})
	}
}
