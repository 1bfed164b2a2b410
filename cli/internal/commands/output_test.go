package commands

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	forlockv1 "github.com/forlock/fleet/proto/forlock/v1"
)

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{12 * time.Second, "12s"},
		{59*time.Second + 900*time.Millisecond, "59s"},
		{5*time.Minute + 12*time.Second, "5m12s"},
		{5 * time.Minute, "5m"},
		{42*time.Minute + 30*time.Second, "42m"},
		{3*time.Hour + 5*time.Minute, "3h5m"},
		{3 * time.Hour, "3h"},
		{50 * time.Hour, "2d2h"},
		{72 * time.Hour, "3d"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, shortDuration(tt.d))
		})
	}
}

func TestAgeAndWhen(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, "never", age(now, nil))
	require.Equal(t, "12s ago", age(now, timestamppb.New(now.Add(-12*time.Second))))
	require.Equal(t, "in 59m", age(now, timestamppb.New(now.Add(59*time.Minute))))
	require.Equal(t, "2026-03-01 13:00:00 UTC (in 1h)", when(now, timestamppb.New(now.Add(time.Hour))))
	require.Equal(t, "never", when(now, nil))
}

func TestSizesAndRTT(t *testing.T) {
	require.Equal(t, "1.5 GiB", gib(3<<29))
	require.Equal(t, "25.0% used (5.0 of 20.0 GiB)", usage(20<<30, 15<<30))
	require.Equal(t, "0.0% used (0.0 of 20.0 GiB)", usage(20<<30, 30<<30), "free above total clamps")
	require.Equal(t, "-", usage(0, 0))
	require.Equal(t, "-", rtt(nil))
	require.Equal(t, "850µs", rtt(durationpb.New(850*time.Microsecond)))
	require.Equal(t, "12.3ms", rtt(durationpb.New(12300*time.Microsecond)))
	require.Equal(t, "1.5s", rtt(durationpb.New(1500*time.Millisecond)))
	require.Equal(t, "<none>", labelString(nil))
	require.Equal(t, "a=1,b=2", labelString(map[string]string{"b": "2", "a": "1"}))
}

func TestTokenStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	future := timestamppb.New(now.Add(time.Hour))
	tests := []struct {
		name string
		tok  *forlockv1.JoinToken
		want string
	}{
		{"active", &forlockv1.JoinToken{ExpiresAt: future, MaxUses: 2, Uses: 1}, "active"},
		{"used up", &forlockv1.JoinToken{ExpiresAt: future, MaxUses: 2, Uses: 2}, "used up"},
		{"expired", &forlockv1.JoinToken{ExpiresAt: timestamppb.New(now), MaxUses: 2}, "expired"},
		{"revoked wins", &forlockv1.JoinToken{ExpiresAt: timestamppb.New(now), RevokedAt: timestamppb.New(now)}, "revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tokenStatus(now, tt.tok))
		})
	}
}
