package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// MissingKeysError says which key ids seal stored values although the
// keyring lacks them, and how many values each seals: those values cannot
// be read until the keys come back. serve refuses to start with it, /readyz
// answers 503 with it, and a SIGHUP reload that would cause it is refused.
type MissingKeysError struct {
	// Missing lists the ids, sorted, with the values each seals.
	Missing []domain.KeyUsage
}

func (e *MissingKeysError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("key %s seals %d stored values", showKeyID(m.KeyID), m.Values)
	}
	noun := "keys"
	if len(e.Missing) == 1 {
		noun = "key"
	}
	return fmt.Sprintf("the keyring lacks %d %s sealing stored values (%s): those values cannot be read; "+
		"add the missing keys to the keyring after the primary (TOKENSTORE_KEYS or the key file)",
		len(e.Missing), noun, strings.Join(parts, "; "))
}

// showKeyID prints a key id read from storage as is when it is made of
// letters, digits, '-' and '_' (every id tokenstore makes), quoted
// otherwise, so a corrupt column cannot forge log lines.
func showKeyID(id domain.KeyID) string {
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return fmt.Sprintf("%q", string(id))
		}
	}
	return string(id)
}

// CheckKeyring returns a *MissingKeysError when a key id that seals stored
// values is not among keys (a keyring's ids), nil when every one is. It
// costs one KeyIDsInUse (one index probe per distinct key id and table)
// and, only when ids are missing, one count of their rows.
//
// An empty key id (a value from the replaced system that recorded none,
// which Decrypt tries against every key) never counts as missing: no key
// is known to be needed for it. The schema refuses such rows anyway
// (key_id <> ”), and the importer re-seals every value under the primary.
func CheckKeyring(ctx context.Context, store ports.KeyInventory, keys []domain.KeyID) error {
	inUse, err := store.KeyIDsInUse(ctx)
	if err != nil {
		return fmt.Errorf("cannot check the keyring against the stored values: %w", err)
	}
	var missing []domain.KeyID
	for _, id := range inUse {
		if id != "" && !slices.Contains(keys, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	usage, err := store.CountValuesOfKeys(ctx, missing)
	if err != nil {
		return fmt.Errorf("the keyring lacks keys %v that seal stored values; counting them failed: %w", missing, err)
	}
	// A missing key's last value may have gone between the two queries.
	if len(usage) == 0 {
		return nil
	}
	return &MissingKeysError{Missing: usage}
}

// KeyringCheck is the /readyz side of CheckKeyring: the keyring in use
// now (a reload may replace it) against the stored values, at every probe.
type KeyringCheck struct {
	ring  ports.Keyring
	store ports.KeyInventory
}

// NewKeyringCheck checks ring against store's values.
func NewKeyringCheck(ring ports.Keyring, store ports.KeyInventory) *KeyringCheck {
	return &KeyringCheck{ring: ring, store: store}
}

// Check is CheckKeyring with the ring's current keys.
func (c *KeyringCheck) Check(ctx context.Context) error {
	return CheckKeyring(ctx, c.store, c.ring.Keys())
}

// DefaultKeyringHeartbeat is how often an instance records its keyring.
const DefaultKeyringHeartbeat = 15 * time.Second

// KeyringLiveBeats: an instance counts as live for this many heartbeat
// intervals after its last one, so one slow or lost heartbeat does not
// make it look dead.
const KeyringLiveBeats = 3

// KeyringHeartbeatConfig tunes KeyringHeartbeat.
type KeyringHeartbeatConfig struct {
	// Instance names this instance (its refresh lease owner name).
	Instance string
	// Interval between heartbeats. Default DefaultKeyringHeartbeat.
	Interval time.Duration
}

// KeyringHeartbeat records this instance's keyring in the database every
// interval (and at once after a reload), so `keys retire` and `keys
// rotate` see the keyring of every live instance. The row lives
// KeyringLiveBeats intervals; Stop deletes it.
type KeyringHeartbeat struct {
	cfg  KeyringHeartbeatConfig
	ring ports.Keyring
	reg  ports.KeyringRegistry
	log  *slog.Logger
	job  background
}

// NewKeyringHeartbeat returns the heartbeat of ring (read afresh at each
// beat). log may be nil.
func NewKeyringHeartbeat(cfg KeyringHeartbeatConfig, log *slog.Logger, ring ports.Keyring, reg ports.KeyringRegistry) *KeyringHeartbeat {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultKeyringHeartbeat
	}
	if cfg.Instance == "" {
		cfg.Instance = InstanceName()
	}
	return &KeyringHeartbeat{cfg: cfg, ring: ring, reg: reg, log: orDiscard(log)}
}

// Start records the keyring once (a failure is logged, not fatal: serving
// does not depend on it, and the next beat tries again) and then every
// interval until Stop.
func (h *KeyringHeartbeat) Start(ctx context.Context) error {
	h.beatAndLog(ctx)
	h.job.every(h.cfg.Interval, h.beatAndLog)
	return nil
}

// Stop ends the heartbeats and deletes this instance's row, so that a key
// it held can be retired at once.
func (h *KeyringHeartbeat) Stop(ctx context.Context) error {
	if err := h.job.stop(ctx); err != nil {
		return err
	}
	if err := h.reg.ForgetKeyring(ctx, h.cfg.Instance); err != nil {
		h.log.Warn("could not delete this instance's keyring record; it expires by itself",
			"instance", h.cfg.Instance, "expires_within", KeyringLiveBeats*h.cfg.Interval, "err", err)
	}
	return nil
}

// Beat records the keyring now.
func (h *KeyringHeartbeat) Beat(ctx context.Context) error {
	keys := h.ring.Keys() // one read: primary and ids of the same ring
	return h.reg.RecordKeyring(ctx, domain.InstanceKeyring{Instance: h.cfg.Instance, Primary: keys[0], Keys: keys},
		KeyringLiveBeats*h.cfg.Interval)
}

func (h *KeyringHeartbeat) beatAndLog(ctx context.Context) {
	if err := h.Beat(ctx); err != nil && ctx.Err() == nil {
		h.log.Warn("could not record this instance's keyring; `keys retire` cannot see it until a heartbeat succeeds",
			"instance", h.cfg.Instance, "err", err)
	}
}

// KeyringFleet answers what the keyrings of the live instances allow
// (ports.KeyringRegistry): `keys retire` and `keys rotate` ask it.
type KeyringFleet struct {
	reg ports.KeyringRegistry
}

// NewKeyringFleet reads the instances' keyrings from reg.
func NewKeyringFleet(reg ports.KeyringRegistry) *KeyringFleet { return &KeyringFleet{reg: reg} }

// ErrKeyInUse: a live instance still seals with the key.
var ErrKeyInUse = errors.New("live instances still seal with the key")

// CheckRetire fails, wrapping ErrKeyInUse and naming them, while any live
// instance seals with key (its primary): values it writes after the
// retirement would be sealed by a key no keyring holds any more. It
// returns the live instances that hold key only as an older key: they
// never need it once no stored value is sealed by it, and drop it at
// their next reload (SIGHUP) or restart.
func (f *KeyringFleet) CheckRetire(ctx context.Context, key domain.KeyID) (olderHolders []string, err error) {
	live, err := f.reg.LiveKeyrings(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot read the instances' keyrings: %w", err)
	}
	var sealers []string
	for _, k := range live {
		switch {
		case k.Primary == key:
			sealers = append(sealers, fmt.Sprintf("%s (last heartbeat %s)", k.Instance, k.HeartbeatAt.UTC().Format(time.RFC3339)))
		case k.Holds(key):
			olderHolders = append(olderHolders, k.Instance)
		}
	}
	if len(sealers) == 0 {
		return olderHolders, nil
	}
	return nil, fmt.Errorf("%w: key %s is the primary key of %d live instances: %s; put the new primary first in their keyring "+
		"and reload them (SIGHUP) or restart them, then run `tokenstore keys rotate` (an instance that stopped without "+
		"saying so counts as live until its heartbeat expires)", ErrKeyInUse, key, len(sealers), strings.Join(sealers, ", "))
}

// PrimaryWarning returns, when the live instances and primary (the
// keyring of the command asking) do not all agree on the primary key, a
// warning naming each instance's primary; "" when they agree.
func (f *KeyringFleet) PrimaryWarning(ctx context.Context, primary domain.KeyID) (string, error) {
	live, err := f.reg.LiveKeyrings(ctx)
	if err != nil {
		return "", fmt.Errorf("cannot read the instances' keyrings: %w", err)
	}
	disagree := false
	parts := make([]string, len(live))
	for i, k := range live {
		disagree = disagree || k.Primary != primary
		parts[i] = fmt.Sprintf("%s seals with %s", k.Instance, k.Primary)
	}
	if !disagree {
		return "", nil
	}
	return fmt.Sprintf("live instances do not all seal with this keyring's primary key %s (%s): "+
		"values they write meanwhile are sealed by their primary, not %s; roll the new keyring out to every instance "+
		"(SIGHUP or restart) and run `tokenstore keys rotate` again", primary, strings.Join(parts, "; "), primary), nil
}
