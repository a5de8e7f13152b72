// A Tchap-like person for guichet's end-to-end tests: matrix-js-sdk with its
// Rust crypto (the stack of Tchap's web client), driven by JSON lines on
// stdin and reporting what it sees as JSON lines on stdout. Logs go to stderr.
import * as readline from "node:readline";
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel(process.env.JSAGENT_DEBUG ? "debug" : "error");

let client = null;
let startedAt = 0;
const seen = new Set();

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function report(event) {
  if (!client || event.getSender() === client.getUserId()) return;
  if (event.getType() !== "m.room.message") return;
  if (event.isDecryptionFailure()) {
    emit({ event: "decrypt_error", roomId: event.getRoomId(), eventId: event.getId(), sender: event.getSender(),
      error: String(event.decryptionFailureReason ?? "decryption failed") });
    return;
  }
  const key = event.getId() + (event.isEncrypted() ? ":clear" : "");
  if (seen.has(key)) return;
  seen.add(key);
  const content = event.getContent();
  const rel = content["m.relates_to"] ?? {};
  const replaceOf = rel.rel_type === "m.replace" ? rel.event_id : null;
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

async function start(cmd) {
  client = sdk.createClient({
    baseUrl: cmd.baseUrl,
    userId: cmd.userId,
    deviceId: cmd.deviceId,
    accessToken: cmd.accessToken,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  startedAt = Date.now();

  client.on(sdk.RoomMemberEvent.Membership, (_event, member) => {
    if (member.userId !== client.getUserId()) return;
    if (member.membership === "invite") {
      const isDirect = !!member.events.member?.getContent()?.is_direct;
      emit({ event: "invite", roomId: member.roomId, inviter: member.events.member?.getSender(), isDirect });
      client.joinRoom(member.roomId).catch((err) => process.stderr.write(`join failed: ${err}\n`));
    } else if (member.membership === "join") {
      emit({ event: "joined", roomId: member.roomId });
    }
  });
  client.on(sdk.RoomEvent.Timeline, (event, _room, toStartOfTimeline) => {
    if (toStartOfTimeline || event.getTs() < startedAt - 60_000) return;
    if (event.isEncrypted() && !event.getClearContent() && !event.isDecryptionFailure()) return; // reported once decrypted
    report(event);
  });
  client.on(sdk.MatrixEventEvent.Decrypted, (event) => {
    if (event.getTs() < startedAt - 60_000) return;
    report(event);
  });

  const prepared = new Promise((resolve, reject) => {
    const onSync = (state) => {
      if (state === "PREPARED" || state === "SYNCING") {
        client.off(sdk.ClientEvent.Sync, onSync);
        resolve();
      } else if (state === "ERROR") {
        reject(new Error("sync failed"));
      }
    };
    client.on(sdk.ClientEvent.Sync, onSync);
  });
  await client.startClient({ initialSyncLimit: 20 });
  await prepared;
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "start":
      await start(cmd);
      return {};
    case "join":
      await client.joinRoom(cmd.roomId);
      return {};
    case "send": {
      const res = await client.sendMessage(cmd.roomId, { msgtype: "m.text", body: cmd.body });
      return { eventId: res.event_id };
    }
    case "stop":
      client?.stopClient();
      emit({ ok: true, id: cmd.id });
      process.exit(0);
    default:
      throw new Error(`unknown command ${cmd.cmd}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    emit({ ok: false, error: `bad JSON: ${err}` });
    return;
  }
  handle(cmd).then(
    (res) => emit({ ok: true, id: cmd.id, ...res }),
    (err) => emit({ ok: false, id: cmd.id, error: String(err?.message ?? err) }),
  );
});
rl.on("close", () => {
  client?.stopClient();
  process.exit(0);
});
