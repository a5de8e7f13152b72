// A Tchap-like person for guichet's end-to-end tests: matrix-js-sdk with its
// Rust crypto (the stack of Tchap's web client), driven by JSON lines on
// stdin and reporting what it sees as JSON lines on stdout. Logs go to stderr.
//
// Commands (each may carry an "id", echoed in its reply {"ok":true|false,...}):
//   {"cmd":"start","baseUrl","userId","accessToken","deviceId"}
//   {"cmd":"join","roomId"}                       (a room id or alias)
//   {"cmd":"send","roomId","body"} or {"cmd":"send","roomId","content":{...}}
//                                                 -> {"ok":true,"eventId"}
//   {"cmd":"device_status","userId","deviceId"}  -> {"ok":true,"result":{"known",
//     "signedByOwner","crossSigningVerified","locallyVerified","verified"}}
//     (known: the device is in the crypto store, which holds the users the
//     person shares an encrypted room with)
//   {"cmd":"stop"}                                -> exits 0
// Events:
//   {"event":"invite","roomId","inviter","isDirect"}   (the room is then joined)
//   {"event":"joined","roomId","viaInvite"}
//   {"event":"message","roomId","eventId","sender","msgtype","body","format",
//    "formattedBody","encrypted","replaceOf","inReplyTo","ts"}
//   {"event":"decrypt_error","roomId","eventId","sender","error"}
//
// "message" covers m.room.message events from other users, once decrypted,
// except those of the first sync (what was there before the start). Rooms
// joined later are reported in full, as a person opening them would see them.
import * as readline from "node:readline";
import { webcrypto } from "node:crypto";

// stdout is the protocol: keep every console output (the SDK's and the Rust
// crypto's tracing, which bypass the SDK's log level) on stderr, and only
// warnings and errors unless JSAGENT_DEBUG is set.
const debug = !!process.env.JSAGENT_DEBUG;
for (const level of ["log", "info", "debug", "trace", "warn"]) {
  console[level] = debug || level === "warn" ? (...args) => console.error(...args) : () => {};
}
// Node 20 has a global Web Crypto; keep older set-ups working.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
process.on("unhandledRejection", (err) => console.error("unhandled rejection:", err));

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { AllDevicesIsolationMode } = await import("matrix-js-sdk/lib/crypto-api/index.js");
logger.setLevel(debug ? "debug" : "warn");

let client = null;
let prepared = false;
const initial = new Set(); // event ids of the first sync: not reported
const reported = new Set(); // event ids reported as message
const invited = new Set();
const joined = new Set();

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function report(event) {
  if (!client || event.getSender() === client.getUserId()) return;
  if (initial.has(event.getId()) || reported.has(event.getId())) return;
  if (event.isDecryptionFailure()) {
    emit({
      event: "decrypt_error", roomId: event.getRoomId(), eventId: event.getId(), sender: event.getSender(),
      error: String(event.decryptionFailureReason ?? "decryption failed"),
    });
    return; // js-sdk decrypts again when the key arrives and emits Decrypted
  }
  if (event.isBeingDecrypted() || (event.isEncrypted() && !event.getClearContent())) return; // wait for Decrypted
  if (event.getType() !== "m.room.message") return;
  reported.add(event.getId());
  // The event's own content (getContent would give the latest edit instead);
  // m.relates_to travels in clear beside the ciphertext in encrypted rooms.
  const content = event.getOriginalContent();
  const rel = { ...(content["m.relates_to"] ?? {}), ...(event.getWireContent()["m.relates_to"] ?? {}) };
  const replaceOf = rel.rel_type === "m.replace" ? rel.event_id ?? null : null;
  const shown = replaceOf && content["m.new_content"] ? content["m.new_content"] : content;
  emit({
    event: "message",
    roomId: event.getRoomId(),
    eventId: event.getId(),
    sender: event.getSender(),
    msgtype: shown.msgtype ?? "",
    body: shown.body ?? "",
    format: shown.format ?? "",
    formattedBody: shown.formatted_body ?? "",
    encrypted: event.isEncrypted(),
    replaceOf,
    inReplyTo: rel["m.in_reply_to"]?.event_id ?? null,
    ts: event.getTs(),
  });
}

function onMembership(_event, member) {
  if (member.userId !== client.getUserId()) return;
  const roomId = member.roomId;
  if (member.membership === "invite" && !invited.has(roomId) && !joined.has(roomId)) {
    invited.add(roomId);
    const ev = member.events.member;
    emit({ event: "invite", roomId, inviter: ev?.getSender() ?? null, isDirect: !!ev?.getContent()?.is_direct });
    joinWithRetry(roomId);
  } else if (member.membership === "join" && !joined.has(roomId)) {
    joined.add(roomId);
    emit({ event: "joined", roomId, viaInvite: invited.has(roomId) });
  }
}

async function joinWithRetry(roomId) {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.joinRoom(roomId);
      return;
    } catch (err) {
      console.error(`join ${roomId} failed (attempt ${attempt}): ${err}`);
      if (attempt >= 5 || !client.clientRunning) return;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function start(cmd) {
  if (client) throw new Error("already started");
  for (const key of ["baseUrl", "userId", "accessToken", "deviceId"]) {
    if (!cmd[key]) throw new Error(`start needs ${key}`);
  }
  client = sdk.createClient({
    baseUrl: cmd.baseUrl,
    userId: cmd.userId,
    deviceId: cmd.deviceId,
    accessToken: cmd.accessToken,
  });
  // In memory: no IndexedDB in Node. Loads the WASM module.
  await client.initRustCrypto({ useIndexedDB: false });
  const crypto = client.getCrypto();
  // Those are the defaults; said here because tests rely on them: keys are
  // shared with every device, verified or not, and unverified senders are
  // decrypted.
  crypto.globalBlacklistUnverifiedDevices = false;
  crypto.setDeviceIsolationMode(new AllDevicesIsolationMode(false));

  client.on(sdk.RoomMemberEvent.Membership, onMembership);
  client.on(sdk.RoomEvent.Timeline, (event, _room, toStartOfTimeline) => {
    if (!prepared) {
      initial.add(event.getId());
      return;
    }
    if (toStartOfTimeline) return; // back-pagination
    report(event);
  });
  client.on(sdk.MatrixEventEvent.Decrypted, (event) => {
    if (prepared) report(event);
  });

  const ready = new Promise((resolve, reject) => {
    const onSync = (state, _prev, data) => {
      if (state === "PREPARED" || state === "SYNCING") {
        prepared = true;
        client.off(sdk.ClientEvent.Sync, onSync);
        resolve();
      } else if (state === "ERROR") {
        client.off(sdk.ClientEvent.Sync, onSync);
        reject(new Error(`first sync failed: ${data?.error?.message ?? data?.error ?? "unknown error"}`));
      }
    };
    client.on(sdk.ClientEvent.Sync, onSync);
    // A bad or expired token: js-sdk stops syncing without an ERROR state.
    client.once(sdk.HttpApiEvent.SessionLoggedOut, (err) => reject(new Error(`logged out: ${err?.message ?? err}`)));
  });
  await client.startClient({ initialSyncLimit: 50, lazyLoadMembers: false });
  await ready;
}

async function handle(cmd) {
  if (cmd.cmd !== "start" && cmd.cmd !== "stop" && !client) throw new Error("not started");
  switch (cmd.cmd) {
    case "start":
      await start(cmd);
      return {};
    case "join":
      await client.joinRoom(cmd.roomId);
      return {};
    case "send": {
      const content = cmd.content ?? { msgtype: "m.text", body: cmd.body ?? "" };
      const res = await client.sendMessage(cmd.roomId, content);
      return { eventId: res.event_id };
    }
    case "device_status":
      return { result: await deviceStatus(cmd.userId, cmd.deviceId) };
    case "stop":
      shutdown(cmd.id);
      return null;
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

// deviceStatus is what Element shows for a device: signedByOwner means
// cross-signed by its owner's self-signing key, itself signed by the owner's
// master key.
async function deviceStatus(userId, deviceId) {
  const status = await client.getCrypto().getDeviceVerificationStatus(userId, deviceId);
  return {
    known: !!status,
    signedByOwner: !!status?.signedByOwner,
    crossSigningVerified: !!status?.crossSigningVerified,
    locallyVerified: !!status?.localVerified,
    verified: !!status?.isVerified(),
  };
}

function shutdown(id) {
  try {
    client?.stopClient();
  } catch (err) {
    console.error(`stopClient: ${err}`);
  }
  if (id !== undefined) emit({ ok: true, id });
  process.exit(0);
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    emit({ ok: false, error: `bad JSON: ${err}` });
    return;
  }
  handle(cmd).then(
    (res) => res && emit({ ok: true, id: cmd.id, ...res }),
    (err) => emit({ ok: false, id: cmd.id, error: String(err?.message ?? err) }),
  );
});
rl.on("close", () => shutdown()); // the driver went away
process.on("SIGTERM", () => shutdown());
