package bot

import (
	"context"
	"math"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	goolmaccount "maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

// One-time keys. Each new Olm session a client opens with guichet claims one
// of guichet's one-time keys on the homeserver, and Dendrite has no fallback
// keys: when none is left, the client cannot encrypt for guichet and the
// agent's message cannot be read. mautrix keeps 50 keys on the server and,
// when it tops them up, discards the oldest of the 100 the account can hold;
// under a burst of new DMs those are keys already claimed whose first message
// has not arrived yet, so those messages cannot be read either.
//
// otkKeeper replaces that policy. It keeps the server as full as the account
// allows, and it never discards a claimed key to make room, unless claimed
// keys have gone unused for a whole otkAbandonAfter (a client that claimed a
// key and never wrote): only then may the oldest keys be discarded.
type otkKeeper struct {
	mach *crypto.OlmMachine
	now  func() time.Time

	serverCount int // from the last sync, hidden from mautrix

	windowStart time.Time
	floor       int // fewest claimed-but-unused keys seen since windowStart
	abandoned   int // keys claimed a whole window ago and still unused
}

// otkAbandonAfter is how long a claimed key is kept for its first message.
const otkAbandonAfter = 10 * time.Minute

// otkRefill is the fraction of the account's capacity under which the server
// is topped up, so that each upload carries a batch, not one key per claim.
const otkRefill = 0.75

// otkToGenerate is how many keys to add: enough to fill the server to
// capacity, without discarding a claimed key that may still be used.
// capacity is how many keys the account holds; server how many the server
// has left; local how many the account holds (on the server, or claimed and
// not yet used); abandoned how many of those may be discarded.
func otkToGenerate(capacity, server, local, abandoned int) int {
	if float64(server) >= otkRefill*float64(capacity) {
		return 0
	}
	return max(min(capacity-server, capacity-local+abandoned), 0)
}

// hide takes the one-time key count out of a sync response before mautrix
// sees it, so mautrix's own top-up never runs.
func (k *otkKeeper) hide(res *mautrix.RespSync) {
	k.serverCount = res.DeviceOTKCount.SignedCurve25519
	res.DeviceOTKCount.SignedCurve25519 = math.MaxInt32
}

// track updates the estimate of abandoned claims from the number of keys
// claimed and not yet used.
func (k *otkKeeper) track(claimed int) {
	now := k.now()
	if k.windowStart.IsZero() {
		k.windowStart, k.floor = now, claimed
		return
	}
	k.floor = min(k.floor, claimed)
	if now.Sub(k.windowStart) >= otkAbandonAfter {
		k.abandoned = k.floor
		k.windowStart, k.floor = now, claimed
	}
}

// topUp runs on the sync goroutine after the sync's to-device messages were
// decrypted, so the keys they used are already gone from the account.
func (k *otkKeeper) topUp(ctx context.Context, _ *mautrix.RespSync, _ string) bool {
	log := zerolog.Ctx(ctx)
	acc, err := k.mach.CryptoStore.GetAccount(ctx)
	if err != nil || acc == nil || !acc.Shared {
		return true
	}
	internal, ok := acc.Internal.(*goolmaccount.Account)
	if !ok {
		return true // unreachable: otk_nogoolm.go stops builds without goolm
	}
	capacity := int(internal.MaxNumberOfOneTimeKeys())
	local := len(internal.OTKeys)
	k.track(max(local-k.serverCount, 0))
	n := otkToGenerate(capacity, k.serverCount, local, k.abandoned)
	if n == 0 {
		return true
	}
	if err := internal.GenOneTimeKeys(uint(n)); err != nil {
		log.Err(err).Msg("Failed to generate one-time keys")
		return true
	}
	if discarded := local + n - capacity; discarded > 0 {
		k.abandoned = max(k.abandoned-discarded, 0)
		log.Warn().Int("discarded", discarded).Msg("Discarded one-time keys claimed long ago and never used")
	}
	unpublished, err := internal.OneTimeKeys()
	if err != nil {
		log.Err(err).Msg("Failed to read one-time keys")
		return true
	}
	keys := make(map[id.KeyID]mautrix.OneTimeKey, len(unpublished))
	for keyID, pub := range unpublished {
		key := mautrix.OneTimeKey{Key: pub, IsSigned: true}
		sig, err := acc.SignJSON(&key)
		if err != nil {
			log.Err(err).Msg("Failed to sign one-time key")
			return true
		}
		key.Signatures = signatures.NewSingleSignature(k.mach.Client.UserID, id.KeyAlgorithmEd25519, k.mach.Client.DeviceID.String(), sig)
		keys[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, keyID)] = key
	}
	// Saved before the upload: keys the server has must never be lost.
	if err := k.mach.CryptoStore.PutAccount(ctx, acc); err != nil {
		log.Err(err).Msg("Failed to save the account before uploading one-time keys")
		return true
	}
	resp, err := k.mach.Client.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: keys})
	if err != nil {
		log.Err(err).Int("count", len(keys)).Msg("Failed to upload one-time keys; will retry at the next sync")
		return true
	}
	internal.MarkKeysAsPublished()
	if err := k.mach.CryptoStore.PutAccount(ctx, acc); err != nil {
		log.Err(err).Msg("Failed to save the account after uploading one-time keys")
	}
	k.serverCount = resp.OneTimeKeyCounts.SignedCurve25519
	log.Debug().Int("uploaded", len(keys)).Int("on_server", k.serverCount).Int("held", len(internal.OTKeys)).Msg("Uploaded one-time keys")
	return true
}
