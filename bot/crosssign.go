package bot

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"
)

// crossSigningKey is the setting holding the private cross-signing keys,
// encrypted with the pickle key like the rest of the E2EE state: whoever
// holds the self-signing key can make any device look like guichet's.
const crossSigningKey = "cross_signing_seeds"

// crossSign makes guichet's device show as verified in Element-based
// clients (Tchap): the device is signed by guichet's self-signing key, which
// is signed by its master key. At first start with a password guichet
// creates the keys and writes the recovery key once to RecoveryKeyFile;
// later starts reuse the keys kept in the database, and only sign the device
// again when it changed. A failure leaves the device unverified, which
// costs a warning shield in clients, not the service: it is logged, not
// returned.
func (b *Bot) crossSign(ctx context.Context, mach *crypto.OlmMachine) {
	log := zerolog.Ctx(ctx).With().Str("action", "cross-signing").Logger()
	ctx = log.WithContext(ctx)
	if err := b.setUpCrossSigning(ctx, mach); err != nil {
		log.Err(err).Msg("Failed to cross-sign guichet's device: clients will show it as unverified")
	}
}

func (b *Bot) setUpCrossSigning(ctx context.Context, mach *crypto.OlmMachine) error {
	log := zerolog.Ctx(ctx)
	user, device := b.client.UserID, b.client.DeviceID
	resp, err := b.client.QueryKeys(ctx, &mautrix.ReqQueryKeys{
		DeviceKeys: mautrix.DeviceKeysRequest{user: mautrix.DeviceIDList{device}},
	})
	if err != nil {
		return fmt.Errorf("failed to query guichet's own keys: %w", err)
	}
	master, hasMaster := resp.MasterKeys[user]
	serverMaster := master.FirstKey()

	local, err := b.loadCrossSigningKeys(ctx)
	if err != nil {
		return err
	}
	if local != nil && hasMaster && local.MasterKey.PublicKey() != serverMaster {
		log.Warn().Stringer("master_key", serverMaster).
			Msg("The homeserver has other cross-signing keys than those in guichet's database (reset from another session?): using the homeserver's")
		local = nil
	}

	if !hasMaster {
		if b.cfg.Password == "" {
			log.Info().Msg("guichet's device is not cross-signed, so Tchap shows a warning shield on its messages. " +
				"Uploading cross-signing keys needs the account password: set matrix.password for one start " +
				"(guichet then creates the keys, signs its device and writes the recovery key to matrix.recovery_key_file)")
			return nil
		}
		return b.createCrossSigningKeys(ctx, mach)
	}

	if local == nil {
		return b.recoverCrossSigningKeys(ctx, mach)
	}
	if err := mach.ImportCrossSigningKeys(local.Seeds()); err != nil {
		return fmt.Errorf("failed to load the cross-signing keys: %w", err)
	}

	ssk := mach.CrossSigningKeys.SelfSigningKey.PublicKey()
	signed := resp.DeviceKeys[user][device].Signatures[user][id.NewKeyID(id.KeyAlgorithmEd25519, ssk.String())] != ""
	if signed {
		log.Debug().Stringer("master_key", serverMaster).Msg("guichet's device is already cross-signed")
		return nil
	}
	if err := b.signOwnDevice(ctx, mach); err != nil {
		return err
	}
	log.Info().Stringer("master_key", serverMaster).Stringer("device_id", device).Msg("Signed guichet's device with its existing cross-signing keys")
	return nil
}

// createCrossSigningKeys generates the keys, uploads them (authenticating
// with the password), keeps the private keys and writes the recovery key.
func (b *Bot) createCrossSigningKeys(ctx context.Context, mach *crypto.OlmMachine) error {
	log := zerolog.Ctx(ctx)
	uia := func(ui *mautrix.RespUserInteractive) any {
		return &mautrix.ReqUIAuthLogin{
			BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: ui.Session},
			User:         b.client.UserID.String(),
			Password:     b.cfg.Password,
		}
	}
	recoveryKey, keys, err := mach.GenerateAndUploadCrossSigningKeys(ctx, uia, "")
	if err != nil {
		return fmt.Errorf("failed to create cross-signing keys: %w", err)
	}
	if err := b.saveCrossSigningKeys(ctx, keys); err != nil {
		return err
	}
	b.writeRecoveryKey(ctx, recoveryKey)
	if err := b.signOwnDevice(ctx, mach); err != nil {
		return err
	}
	log.Info().Stringer("master_key", keys.MasterKey.PublicKey()).Stringer("device_id", b.client.DeviceID).
		Msg("Created cross-signing keys and signed guichet's device")
	return nil
}

// recoverCrossSigningKeys is for a homeserver that has guichet's keys while
// its database lost them: the recovery key, put back in RecoveryKeyFile,
// fetches them from secret storage and signs the device. Without it the
// operator is told what to do.
func (b *Bot) recoverCrossSigningKeys(ctx context.Context, mach *crypto.OlmMachine) error {
	log := zerolog.Ctx(ctx)
	var recoveryKey string
	if b.cfg.RecoveryKeyFile != "" {
		raw, err := os.ReadFile(b.cfg.RecoveryKeyFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to read the recovery key file %s: %w", b.cfg.RecoveryKeyFile, err)
		}
		recoveryKey = strings.TrimSpace(string(raw))
	}
	if recoveryKey == "" {
		log.Error().Str("recovery_key_file", b.cfg.RecoveryKeyFile).
			Msg("The homeserver has cross-signing keys for guichet but its database does not hold their private keys, " +
				"so guichet's device stays unverified. Put the recovery key written at first start in matrix.recovery_key_file " +
				"and restart, or reset the bot's cross-signing keys from another session (Element: Settings, Security)")
		return nil
	}
	if err := mach.VerifyWithRecoveryKey(ctx, recoveryKey); err != nil {
		return fmt.Errorf("failed to fetch the cross-signing keys with the recovery key in %s: %w", b.cfg.RecoveryKeyFile, err)
	}
	if err := b.saveCrossSigningKeys(ctx, mach.CrossSigningKeys); err != nil {
		return err
	}
	log.Info().Msg("Restored the cross-signing keys with the recovery key and signed guichet's device")
	return nil
}

func (b *Bot) signOwnDevice(ctx context.Context, mach *crypto.OlmMachine) error {
	if err := mach.SignOwnDevice(ctx, mach.OwnIdentity()); err != nil {
		return fmt.Errorf("failed to sign guichet's device: %w", err)
	}
	if err := mach.SignOwnMasterKey(ctx); err != nil {
		return fmt.Errorf("failed to sign guichet's master key with its device: %w", err)
	}
	return nil
}

// writeRecoveryKey writes the recovery key once: an existing file is never
// replaced, since it may hold the only copy of an earlier key.
func (b *Bot) writeRecoveryKey(ctx context.Context, recoveryKey string) {
	log := zerolog.Ctx(ctx)
	path := b.cfg.RecoveryKeyFile
	if path == "" {
		log.Info().Msg("The recovery key was not written (matrix.recovery_key_file is empty); " +
			"guichet keeps its cross-signing keys in its database. To get a recovery key, set matrix.recovery_key_file " +
			"and reset the bot's cross-signing keys from another session")
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		log.Error().Err(err).Str("recovery_key_file", path).
			Msg("Failed to write the recovery key; guichet keeps its cross-signing keys in its database")
		return
	}
	_, err = f.WriteString(recoveryKey + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Error().Err(err).Str("recovery_key_file", path).Msg("Failed to write the recovery key")
		return
	}
	log.Info().Str("recovery_key_file", path).
		Msg("Wrote the recovery key of guichet's cross-signing keys: keep it somewhere safe, it can make any device look like guichet's")
}

// sealedSeeds is how the private keys are kept: AES-256-GCM under a key
// derived from the pickle key.
type sealedSeeds struct {
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

func (b *Bot) seedsCipher() (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(b.cfg.PickleKey), nil, "guichet cross-signing seeds", 32)
	if err != nil {
		return nil, fmt.Errorf("failed to derive the key of the cross-signing keys: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("failed to set up AES: %w", err)
	}
	return cipher.NewGCM(block)
}

func (b *Bot) saveCrossSigningKeys(ctx context.Context, keys *crypto.CrossSigningKeysCache) error {
	plain, err := json.Marshal(keys.Seeds())
	if err != nil {
		return fmt.Errorf("failed to encode the cross-signing keys: %w", err)
	}
	aead, err := b.seedsCipher()
	if err != nil {
		return err
	}
	sealed := sealedSeeds{Nonce: make([]byte, aead.NonceSize())}
	if _, err := rand.Read(sealed.Nonce); err != nil {
		return fmt.Errorf("failed to draw a nonce: %w", err)
	}
	sealed.Ciphertext = aead.Seal(nil, sealed.Nonce, plain, []byte(b.client.UserID))
	raw, err := json.Marshal(sealed)
	if err != nil {
		return fmt.Errorf("failed to encode the sealed cross-signing keys: %w", err)
	}
	if err := b.store.SetSetting(ctx, crossSigningKey, base64.StdEncoding.EncodeToString(raw), b.now()); err != nil {
		return fmt.Errorf("failed to save the cross-signing keys: %w", err)
	}
	return nil
}

// loadCrossSigningKeys returns the kept private keys, or nil if there are none.
func (b *Bot) loadCrossSigningKeys(ctx context.Context) (*crypto.CrossSigningKeysCache, error) {
	value, ok, err := b.store.Setting(ctx, crossSigningKey)
	if err != nil {
		return nil, fmt.Errorf("failed to read the cross-signing keys: %w", err)
	}
	if !ok || value == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("failed to decode the cross-signing keys: %w", err)
	}
	var sealed sealedSeeds
	if err := json.Unmarshal(raw, &sealed); err != nil {
		return nil, fmt.Errorf("failed to decode the cross-signing keys: %w", err)
	}
	aead, err := b.seedsCipher()
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, sealed.Nonce, sealed.Ciphertext, []byte(b.client.UserID))
	if err != nil {
		return nil, fmt.Errorf("failed to decrypt the cross-signing keys (was matrix.pickle_key changed?): %w", err)
	}
	var seeds crypto.CrossSigningSeeds
	if err := json.Unmarshal(plain, &seeds); err != nil {
		return nil, fmt.Errorf("failed to decode the cross-signing keys: %w", err)
	}
	keys, err := seeds.Decode()
	if err != nil {
		return nil, fmt.Errorf("failed to load the cross-signing keys: %w", err)
	}
	return &keys, nil
}
