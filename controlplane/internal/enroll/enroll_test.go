package enroll

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecide(t *testing.T) {
	now := time.Now()
	web1 := &Node{ID: "id-web1", Name: "web1", KeyID: "k1"}
	quarantined := &Node{ID: "id-web1", Name: "web1", KeyID: "k1", Quarantined: true}
	legacy := &Node{ID: "id-web1", Name: "web1"} // enrolled before keys were recorded
	tok := Token{ID: "t", ExpiresAt: now.Add(time.Hour), MaxUses: 1}
	usedUp := tok
	usedUp.Uses = 1
	forWeb1 := Token{ID: "f", ForNodeName: "web1", ForNodeID: "id-web1", ExpiresAt: now.Add(time.Hour), MaxUses: 1}
	forOldWeb1 := forWeb1
	forOldWeb1.ForNodeID = "id-removed"
	forWeb1Used := forWeb1
	forWeb1Used.Uses = 1
	expired := tok
	expired.ExpiresAt = now
	revoked := tok
	revoked.Revoked = true

	for _, tc := range []struct {
		name  string
		req   Request
		want  Decision
		err   error
		msg   string
		refus string
	}{
		{name: "new name", req: Request{Name: "web2", KeyID: "k2", Token: tok},
			want: Decision{Rule: RuleNew, UseToken: true}},
		{name: "new name, token used up", req: Request{Name: "web2", KeyID: "k2", Token: usedUp},
			err: ErrTokenUsedUp, refus: "refused-token-used-up"},
		{name: "expired token", req: Request{Name: "web2", KeyID: "k2", Token: expired}, err: ErrTokenExpired},
		{name: "revoked token", req: Request{Name: "web2", KeyID: "k2", Token: revoked}, err: ErrTokenRevoked},
		{name: "registered name, another key", req: Request{Name: "web1", KeyID: "k2", Token: tok, Node: web1},
			err: ErrNameTaken, refus: "refused-name-taken",
			msg: "node web1 is already enrolled with another key: to replace its host, create a token with 'forlockctl tokens create --for-node web1', or remove the node first with 'forlockctl nodes remove web1'"},
		{name: "registered name, no key on record", req: Request{Name: "web1", KeyID: "k2", Token: tok, Node: legacy},
			err: ErrNameTaken},
		{name: "registered name, its key (rule a)", req: Request{Name: "web1", KeyID: "k1", Token: tok, Node: web1},
			want: Decision{Rule: RuleSameKey, UseToken: true}},
		{name: "its key, token used up", req: Request{Name: "web1", KeyID: "k1", Token: usedUp, Node: web1},
			err: ErrTokenUsedUp},
		{name: "its key, quarantined", req: Request{Name: "web1", KeyID: "k1", Token: tok, Node: quarantined},
			err: ErrQuarantined, refus: "refused-quarantined", msg: "--for-node web1"},
		{name: "retry: same token and key, uses exhausted", req: Request{Name: "web1", KeyID: "k1", Token: usedUp, Node: web1, PriorNodeID: "id-web1"},
			want: Decision{Rule: RuleRetry}},
		{name: "retry with another key", req: Request{Name: "web1", KeyID: "k2", Token: usedUp, Node: web1, PriorNodeID: ""},
			err: ErrNameTaken},
		{name: "retry of a key the node no longer holds", req: Request{Name: "web1", KeyID: "k0", Token: usedUp, Node: web1, PriorNodeID: "id-web1"},
			err: ErrNameTaken},
		{name: "retry while quarantined", req: Request{Name: "web1", KeyID: "k1", Token: usedUp, Node: quarantined, PriorNodeID: "id-web1"},
			err: ErrQuarantined},
		{name: "retry with an expired token", req: Request{Name: "web1", KeyID: "k1", Token: expired, Node: web1, PriorNodeID: "id-web1"},
			err: ErrTokenExpired},
		{name: "for-node, new key (rule b)", req: Request{Name: "web1", KeyID: "k2", Token: forWeb1, Node: web1},
			want: Decision{Rule: RuleForNode, UseToken: true, NewKey: true}},
		{name: "for-node lifts a quarantine", req: Request{Name: "web1", KeyID: "k2", Token: forWeb1, Node: quarantined},
			want: Decision{Rule: RuleForNode, UseToken: true, NewKey: true, Unquarantine: true}},
		{name: "for-node, same key, quarantined", req: Request{Name: "web1", KeyID: "k1", Token: forWeb1, Node: quarantined},
			want: Decision{Rule: RuleForNode, UseToken: true, Unquarantine: true}},
		{name: "for-node retry", req: Request{Name: "web1", KeyID: "k2", Token: forWeb1Used, Node: &Node{ID: "id-web1", Name: "web1", KeyID: "k2"}, PriorNodeID: "id-web1"},
			want: Decision{Rule: RuleRetry}},
		{name: "for-node used twice", req: Request{Name: "web1", KeyID: "k3", Token: forWeb1Used, Node: web1},
			err: ErrTokenUsedUp},
		{name: "for-node under another name", req: Request{Name: "web2", KeyID: "k2", Token: forWeb1},
			err: ErrWrongNode, refus: "refused-token-for-another-node", msg: "replaces the host of node web1 only, not web2"},
		{name: "for-node under another registered name", req: Request{Name: "db1", KeyID: "k2", Token: forWeb1, Node: &Node{ID: "id-db1", Name: "db1", KeyID: "kd"}},
			err: ErrWrongNode},
		{name: "for-node of a node removed and enrolled again", req: Request{Name: "web1", KeyID: "k2", Token: forOldWeb1, Node: web1},
			err: ErrWrongNode, msg: "removed and enrolled again"},
		{name: "for-node of a removed node", req: Request{Name: "web1", KeyID: "k2", Token: forOldWeb1},
			want: Decision{Rule: RuleNew, UseToken: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Now = now
			got, err := Decide(tc.req)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.Contains(t, err.Error(), tc.msg)
				if tc.refus != "" {
					require.Equal(t, tc.refus, Refusal(err))
				}
				require.Equal(t, Decision{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCerts(t *testing.T) {
	now := time.Now()
	grace := time.Minute
	c := Certs{Newest: "c1"}
	require.NoError(t, c.Check("c1", now))
	require.ErrorIs(t, c.Check("c0", now), ErrSuperseded)
	require.ErrorIs(t, c.Check("", now), ErrSuperseded, "an empty serial never matches an empty previous")

	c = c.Renewed("c1", "c2", now, grace)
	require.Equal(t, Certs{Newest: "c2", Previous: "c1", PreviousUntil: now.Add(grace)}, c)
	require.NoError(t, c.Check("c2", now.Add(time.Hour)))
	require.NoError(t, c.Check("c1", now.Add(grace-time.Nanosecond)), "the previous certificate within its grace")
	require.ErrorIs(t, c.Check("c1", now.Add(grace)), ErrSuperseded, "and not after")

	// A renewal from the previous certificate (its answer was lost) does not
	// stretch the grace, and the unused c2 is superseded at once.
	later := now.Add(grace / 2)
	c = c.Renewed("c1", "c3", later, grace)
	require.Equal(t, Certs{Newest: "c3", Previous: "c1", PreviousUntil: now.Add(grace)}, c)
	require.ErrorIs(t, c.Check("c2", later), ErrSuperseded)
	require.NoError(t, c.Check("c3", later))
}
