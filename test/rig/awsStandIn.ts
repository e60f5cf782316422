// A local stand-in for the slice of S3 and SSM that the hosts (Debian's awscli 2.9.19) and the
// release CLI (@aws-sdk/client-s3 + lib-storage) call, so host tests and the rehearsal run with no
// AWS. Both APIs share one port because a script gets a single --endpoint-url. It is strict where
// AWS is strict (digests, part sizes, missing buckets, path scoping) and answers NotImplemented
// for anything it does not cover, so a script that passes here does not lean on leniency.
// Signatures are never checked: every credential in tests is a dummy.
import * as crypto from "node:crypto";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import * as zlib from "node:zlib";
import { PolicyDoc, decide } from "./iamSim";

export type S3Op =
  | "ListBuckets"
  | "CreateBucket"
  | "HeadBucket"
  | "ListObjectsV2"
  | "ListObjectVersions"
  | "DeleteObjects"
  | "PutObject"
  | "CopyObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "DeleteObjectVersion"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload";
export type SsmOp = "GetParametersByPath" | "GetParameter" | "GetParameters" | "PutParameter" | "DeleteParameter";
export type StandInOp = S3Op | SsmOp;

export interface AwsStandIn {
  /** "http://<host>:<port>"; bind `host` to an address the test hosts can reach. */
  endpoint: string;
  /**
   * Buckets only exist when created (NoSuchBucket otherwise). A versioned bucket keeps every
   * version: writes answer their version id, a delete without one leaves a delete marker, and
   * ListObjectVersions, GetObject/HeadObject/CopyObject of a `versionId` and DeleteObject of one
   * (s3:DeleteObjectVersion) work as on S3.
   */
  createBucket(name: string, opts?: { versioned?: boolean }): void;
  /** PutBucketVersioning Enabled (what the program's BucketVersioning does), for an existing bucket. */
  enableVersioning(name: string): void;
  putParameter(name: string, value: string, type: "String" | "SecureString"): void;
  deleteParameter(name: string): void;
  getObject(bucket: string, key: string): Buffer | undefined;
  /** Requests signed with `accessKeyId` are held to `policy` from now on. */
  enforce(accessKeyId: string, policy: PolicyDoc): void;
  /** Stores an object directly (as an operator or the release CLI would), bypassing any policy. */
  putObject(bucket: string, key: string, body: Buffer): void;
  listKeys(bucket: string, prefix?: string): string[];
  /** Makes the next `count` requests matching op fail with a 500 InternalError (fault injection for tests). */
  failNext(op: StandInOp, count?: number): void;
  /**
   * A fault switch: from now until `clearFaults`, every request matching op fails as `kind` says
   * (AWS's own answers: "throttle" is SSM's 400 ThrottlingException or S3's 503 SlowDown, both
   * retried by the SDKs; "error" a 500), or, with `delayMs`, is answered only after that delay
   * (a slow network or service: a step is then in the middle of its call for a while).
   */
  fault(op: StandInOp, kind: "throttle" | "error" | { delayMs: number }): void;
  /** Drops every pending injected failure and switched-on fault. */
  clearFaults(): void;
  /** Every request seen: op name, bucket/key or parameter path, status. Never the body or a parameter value. */
  requests(): { op: string; target: string; status: number }[];
  close(): Promise<void>;
}

const ACCOUNT = "123456789012";
const MIN_PART_SIZE = 5 * 1024 * 1024;
const S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/";
const SSE_VALUES = new Set(["AES256", "aws:kms", "aws:kms:dsse"]);
/** Request headers S3 keeps with an object and replays on GET/HEAD (plus x-amz-meta-*). */
const KEPT_HEADERS = [
  "content-type",
  "content-encoding",
  "cache-control",
  "content-disposition",
  "content-language",
  "expires",
  "x-amz-server-side-encryption",
  "x-amz-server-side-encryption-aws-kms-key-id",
  "x-amz-server-side-encryption-bucket-key-enabled",
  "x-amz-storage-class",
];
const LIST_PARAMS = ["list-type", "prefix", "delimiter", "max-keys", "continuation-token", "start-after"];
// ListObjectVersions: delimiter (common prefixes) is left out, no client here uses it.
const VERSION_LIST_PARAMS = ["prefix", "key-marker", "version-id-marker", "max-keys", "encoding-type"];
const CHECKSUMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

const S3_ERRORS = {
  NoSuchBucket: [404, "The specified bucket does not exist"],
  NoSuchKey: [404, "The specified key does not exist."],
  AccessDenied: [403, "Access Denied"],
  NoSuchUpload: [404, "The specified upload does not exist: it may have been aborted or completed."],
  NoSuchVersion: [404, "The specified version does not exist."],
  MethodNotAllowed: [405, "The specified method is not allowed against this resource."],
  InvalidRange: [416, "The requested range is not satisfiable"],
  BadDigest: [400, "The Content-MD5 or checksum value you specified did not match what we received."],
  XAmzContentSHA256Mismatch: [400, "The provided 'x-amz-content-sha256' header does not match what was computed."],
  IncompleteBody: [400, "You did not provide the number of bytes specified by the Content-Length HTTP header."],
  InvalidArgument: [400, "Invalid Argument"],
  InvalidRequest: [400, "Invalid Request"],
  MalformedXML: [400, "The XML you provided was not well-formed or did not validate against our published schema"],
  InvalidPart: [400, "One or more of the specified parts could not be found, or its entity tag did not match."],
  InvalidPartOrder: [400, "The list of parts was not in ascending order."],
  EntityTooSmall: [400, "Your proposed upload is smaller than the minimum allowed object size."],
  MaxMessageLengthExceeded: [400, "Your request was too big."],
  BucketAlreadyOwnedByYou: [409, "Your previous request to create the named bucket succeeded and you already own it."],
  InternalError: [500, "We encountered an internal error. Please try again."],
  SlowDown: [503, "Please reduce your request rate."],
  NotImplemented: [501, "A header or query you provided implies functionality that is not implemented."],
} as const;

class S3Error extends Error {
  readonly status: number;
  constructor(
    readonly code: keyof typeof S3_ERRORS,
    readonly extra: Record<string, string> = {},
    message?: string,
  ) {
    super(message ?? S3_ERRORS[code][1]);
    this.status = S3_ERRORS[code][0];
  }
}
class SsmError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface Payload {
  /** Kept as received: a multipart object is never copied into one buffer. */
  segments: Buffer[];
  size: number;
  /** Checksums the client sent (x-amz-checksum-*), echoed back as S3 does. */
  checksums: Record<string, string>;
}
interface ReceivedPayload extends Payload {
  md5: Buffer;
}
interface StoredObject extends Payload {
  etag: string;
  lastModified: Date;
  headers: Record<string, string>;
  /** In a versioned bucket; "null" otherwise, as S3 names an unversioned object's version. */
  versionId: string;
  deleteMarker?: boolean;
}
interface StoredBucket {
  created: Date;
  /** The current version of each key (a key whose newest version is a delete marker is absent). */
  objects: Map<string, StoredObject>;
  /** Versioned buckets: every version of each key, oldest first. */
  versions?: Map<string, StoredObject[]>;
}
interface MultipartUpload {
  bucket: string;
  key: string;
  headers: Record<string, string>;
  parts: Map<number, ReceivedPayload>;
}
interface Parameter {
  name: string;
  type: string;
  value: string;
  version: number;
  lastModified: Date;
  /** What a caller without WithDecryption sees instead of a SecureString's value. */
  sealed: string;
}
interface Ctx {
  op: string;
  target: string;
  logged: boolean;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&${Object.keys(ENTITIES).find((k) => ENTITIES[k] === c)};`);
const unesc = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) =>
    e[0] !== "#"
      ? ENTITIES[e.toLowerCase()]
      : String.fromCodePoint(e[1].toLowerCase() === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)),
  );
const el = (name: string, value: string | number | boolean) => `<${name}>${esc(String(value))}</${name}>`;
const xmlDoc = (root: string, body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_NS}">${body}</${root}>`;
const xmlTags = (body: string, tag: string) =>
  [...body.matchAll(new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => unesc(m[1]));
const nowSeconds = () => new Date(Math.floor(Date.now() / 1000) * 1000);
const header = (req: http.IncomingMessage, name: string) => {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(",") : v;
};
const token = {
  encode: (s: string) => Buffer.from(s).toString("base64url"),
  decode: (s: string) => Buffer.from(s, "base64url").toString("utf8"),
};

/**
 * Decodes an aws-chunked body (`<hex>[;chunk-signature=..]\r\n<data>\r\n ... 0\r\n<trailers>\r\n`)
 * as it streams, so a large upload is never held twice. The SDK sends these for stream bodies.
 */
class AwsChunkedDecoder {
  readonly trailers: Record<string, string> = {};
  private state: "size" | "data" | "crlf" | "trailer" | "done" = "size";
  private line = "";
  private remaining = 0;
  constructor(private readonly onData: (b: Buffer) => void) {}

  write(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === "data") {
        const n = Math.min(this.remaining, chunk.length - i);
        this.onData(chunk.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = "crlf";
        continue;
      }
      const nl = chunk.indexOf(0x0a, i);
      const end = nl < 0 ? chunk.length : nl + 1;
      this.line += chunk.toString("latin1", i, end);
      i = end;
      if (this.line.length > 8192) throw this.broken("framing line too long");
      if (nl < 0) continue;
      const line = this.line.replace(/\r?\n$/, "");
      this.line = "";
      this.onLine(line);
    }
  }

  finish(): void {
    if (this.state !== "done") throw this.broken("body ended early");
  }

  private onLine(line: string): void {
    if (this.state === "crlf") {
      if (line !== "") throw this.broken("chunk data not followed by CRLF");
      this.state = "size";
    } else if (this.state === "size") {
      const size = /^([0-9a-fA-F]+)(;.*)?$/.exec(line);
      if (!size) throw this.broken("bad chunk header");
      this.remaining = parseInt(size[1], 16);
      this.state = this.remaining === 0 ? "trailer" : "data";
    } else if (this.state === "trailer") {
      const colon = line.indexOf(":");
      if (line === "") this.state = "done";
      else if (colon > 0) this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    } else {
      throw this.broken("data after the final chunk");
    }
  }

  private broken(why: string) {
    return new S3Error("IncompleteBody", {}, `aws-chunked: ${why}`);
  }
}

/** Incremental digests for every checksum we can verify; crc32c/crc64nvme are echoed unverified. */
class Digests {
  private md5 = crypto.createHash("md5");
  private sha1?: crypto.Hash;
  private sha256?: crypto.Hash;
  private crc32?: number;
  constructor(algorithms: Set<string>) {
    if (algorithms.has("sha1")) this.sha1 = crypto.createHash("sha1");
    if (algorithms.has("sha256")) this.sha256 = crypto.createHash("sha256");
    if (algorithms.has("crc32")) this.crc32 = 0;
  }
  update(b: Buffer): void {
    this.md5.update(b);
    this.sha1?.update(b);
    this.sha256?.update(b);
    if (this.crc32 !== undefined) this.crc32 = zlib.crc32(b, this.crc32);
  }
  finish(): { md5: Buffer; sha256?: Buffer; base64: Record<string, string> } {
    const base64: Record<string, string> = {};
    const sha256 = this.sha256?.digest();
    if (sha256) base64.sha256 = sha256.toString("base64");
    if (this.sha1) base64.sha1 = this.sha1.digest("base64");
    if (this.crc32 !== undefined) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(this.crc32 >>> 0);
      base64.crc32 = b.toString("base64");
    }
    return { md5: this.md5.digest(), sha256, base64 };
  }
}

/**
 * Reads an object or part body straight into one buffer of the announced size, decoding
 * aws-chunked framing and verifying every digest the client supplied (Content-MD5 and a hex
 * x-amz-content-sha256 from awscli, x-amz-checksum-* headers or trailers from the SDK), as S3
 * does. Rejects only once the body is fully read, so the connection stays usable.
 */
function readPayload(req: http.IncomingMessage): Promise<ReceivedPayload> {
  const payloadHash = header(req, "x-amz-content-sha256") ?? "";
  const encodings = (header(req, "content-encoding") ?? "").split(",").map((s) => s.trim());
  const chunked = payloadHash.startsWith("STREAMING-") || encodings.includes("aws-chunked");
  const lengthHeader = header(req, chunked ? "x-amz-decoded-content-length" : "content-length");
  const expected = lengthHeader === undefined ? undefined : Number(lengthHeader);
  const announced = new Map<string, string | undefined>();
  for (const alg of CHECKSUMS) {
    const v = header(req, `x-amz-checksum-${alg}`);
    if (v !== undefined) announced.set(alg, v);
  }
  for (const t of (header(req, "x-amz-trailer") ?? "").split(",")) {
    const m = /^x-amz-checksum-(\w+)$/i.exec(t.trim());
    if (m) announced.set(m[1].toLowerCase(), undefined);
  }
  const hexPayload = /^[0-9a-f]{64}$/.test(payloadHash);
  const digests = new Digests(new Set([...announced.keys(), ...(hexPayload ? ["sha256"] : [])]));

  const target = expected !== undefined && Number.isSafeInteger(expected) ? Buffer.allocUnsafe(expected) : undefined;
  const pieces: Buffer[] = [];
  let size = 0;
  const accept = (b: Buffer) => {
    digests.update(b);
    if (!target) pieces.push(Buffer.from(b));
    else if (size + b.length <= target.length) b.copy(target, size);
    size += b.length;
  };
  const decoder = chunked ? new AwsChunkedDecoder(accept) : undefined;

  const check = (): ReceivedPayload => {
    decoder?.finish();
    if (expected !== undefined && size !== expected) throw new S3Error("IncompleteBody");
    const d = digests.finish();
    const md5Header = header(req, "content-md5");
    if (md5Header !== undefined && md5Header !== d.md5.toString("base64")) throw new S3Error("BadDigest");
    if (hexPayload && !chunked && d.sha256!.toString("hex") !== payloadHash) {
      throw new S3Error("XAmzContentSHA256Mismatch");
    }
    const checksums: Record<string, string> = {};
    for (const [alg, fromHeader] of announced) {
      const sent = fromHeader ?? decoder?.trailers[`x-amz-checksum-${alg}`];
      if (sent === undefined) throw new S3Error("InvalidRequest", {}, `Missing trailer x-amz-checksum-${alg}.`);
      if (d.base64[alg] !== undefined && d.base64[alg] !== sent) {
        throw new S3Error(
          "BadDigest",
          {},
          `The ${alg.toUpperCase()} you specified did not match the calculated checksum.`,
        );
      }
      checksums[alg] = sent;
    }
    return { segments: target ? [target] : pieces, size, md5: d.md5, checksums };
  };

  return new Promise((resolve, reject) => {
    let failure: unknown;
    req.on("data", (c: Buffer) => {
      if (failure) return;
      try {
        if (decoder) decoder.write(c);
        else accept(c);
      } catch (e) {
        failure = e;
      }
    });
    req.on("error", reject);
    req.on("end", () => {
      try {
        if (failure) throw failure;
        resolve(check());
      } catch (e) {
        reject(e);
      }
    });
  });
}

function readSmall(req: http.IncomingMessage, limit = 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on("error", reject);
    req.on("end", () =>
      size > limit ? reject(new S3Error("MaxMessageLengthExceeded")) : resolve(Buffer.concat(chunks).toString("utf8")),
    );
  });
}

function drain(req: http.IncomingMessage): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    req.on("end", resolve);
    req.on("error", () => resolve());
    req.resume();
  });
}

/** The parts of `segments` covering bytes [start, end), without copying. */
function slice(segments: Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const seg of segments) {
    const segEnd = offset + seg.length;
    if (segEnd > start && offset < end) {
      out.push(seg.subarray(Math.max(0, start - offset), Math.min(seg.length, end - offset)));
    }
    offset = segEnd;
  }
  return out;
}

/** A single `bytes=` range as [start, end); undefined serves the whole object, as S3 does for what it ignores. */
function parseRange(value: string | undefined, size: number): [number, number] | undefined {
  const m = value === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start = Number(m[1]);
  let end = size;
  if (m[1] === "") start = Number(m[2]) === 0 ? size : Math.max(0, size - Number(m[2]));
  else if (m[2] !== "") end = Math.min(Number(m[2]) + 1, size);
  if (m[1] !== "" && m[2] !== "" && Number(m[2]) < start) return undefined;
  if (start >= size) throw new S3Error("InvalidRange", { RangeRequested: value!, ActualObjectSize: String(size) });
  return [start, end];
}

function keptHeaders(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = header(req, name);
    if (v !== undefined) out[name] = v;
  }
  for (const name of Object.keys(req.headers)) {
    if (name.startsWith("x-amz-meta-")) out[name] = header(req, name)!;
  }
  // aws-chunked describes this request's framing, not the object.
  const encoding = (out["content-encoding"] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s && s !== "aws-chunked");
  if (encoding.length) out["content-encoding"] = encoding.join(",");
  else delete out["content-encoding"];
  out["content-type"] ??= "binary/octet-stream";
  const sse = out["x-amz-server-side-encryption"];
  if (sse !== undefined && !SSE_VALUES.has(sse)) {
    const extra = { ArgumentName: "x-amz-server-side-encryption", ArgumentValue: sse };
    throw new S3Error("InvalidArgument", extra, "The encryption method specified is not supported");
  }
  if (out["x-amz-server-side-encryption-aws-kms-key-id"] !== undefined && !sse?.startsWith("aws:kms")) {
    throw new S3Error("InvalidArgument", {}, "Specifying a KMS key id requires aws:kms encryption");
  }
  // S3 encrypts every object at rest; saying nothing means SSE-S3.
  out["x-amz-server-side-encryption"] ??= "AES256";
  return out;
}

const sseHeaders = (headers: Record<string, string>) =>
  Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith("x-amz-server-side-encryption")));
const checksumHeaders = (p: Payload) =>
  Object.fromEntries(Object.entries(p.checksums).map(([alg, v]) => [`x-amz-checksum-${alg}`, v]));

/** x-amz-copy-source: "[/]bucket/key[?versionId=id]", the key URL-encoded. */
function copySource(req: http.IncomingMessage): { bucket: string; key: string; versionId?: string } {
  const raw = header(req, "x-amz-copy-source") ?? "";
  const [path, query] = raw.split("?", 2);
  const source = decodeURIComponent(path).replace(/^\//, "");
  const slash = source.indexOf("/");
  if (slash < 1)
    throw new S3Error(
      "InvalidArgument",
      { ArgumentName: "x-amz-copy-source" },
      "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
    );
  const versionId = query ? (new URLSearchParams(query).get("versionId") ?? undefined) : undefined;
  return { bucket: source.slice(0, slash), key: source.slice(slash + 1), versionId };
}

/** Works out which S3 operation a path-style request is, before any body is read. */
function classifyS3(req: http.IncomingMessage, url: URL): { op: S3Op; bucket: string; key: string } {
  const method = req.method ?? "GET";
  const raw = url.pathname.slice(1);
  const slash = raw.indexOf("/");
  const bucket = decodeURIComponent(slash < 0 ? raw : raw.slice(0, slash));
  const key = slash < 0 ? "" : decodeURIComponent(raw.slice(slash + 1));
  // `x-id` is the SDK's label for the operation; any other sub-resource we do not know means a
  // different API (?acl, ?tagging, ?versioning...) that must not be mistaken for the plain one.
  const q = [...url.searchParams.keys()].filter((k) => k !== "x-id");
  const only = (...allowed: string[]) => q.every((k) => allowed.includes(k));
  const copy = header(req, "x-amz-copy-source") !== undefined;
  const op = ((): S3Op | undefined => {
    if (!bucket) return method === "GET" && only() ? "ListBuckets" : undefined;
    if (!key) {
      if (method === "HEAD" && only()) return "HeadBucket";
      if (method === "PUT" && only()) return "CreateBucket";
      if (method === "POST" && q.includes("delete") && only("delete")) return "DeleteObjects";
      // ListObjects (v1) is left out: both clients use v2.
      if (method === "GET" && url.searchParams.get("list-type") === "2" && only(...LIST_PARAMS, "encoding-type")) {
        return "ListObjectsV2";
      }
      if (method === "GET" && q.includes("versions") && only("versions", ...VERSION_LIST_PARAMS)) {
        return "ListObjectVersions";
      }
      return undefined;
    }
    if (method === "PUT" && only()) return copy ? "CopyObject" : "PutObject";
    if (method === "PUT" && !copy && q.includes("uploadId") && only("uploadId", "partNumber")) return "UploadPart";
    if (method === "POST" && q.includes("uploads") && only("uploads")) return "CreateMultipartUpload";
    if (method === "POST" && q.includes("uploadId") && only("uploadId")) return "CompleteMultipartUpload";
    if (method === "DELETE" && only()) return "DeleteObject";
    if (method === "DELETE" && q.includes("versionId") && only("versionId")) return "DeleteObjectVersion";
    if (method === "DELETE" && q.includes("uploadId") && only("uploadId")) return "AbortMultipartUpload";
    if (method === "GET" && q.every((k) => k.startsWith("response-") || k === "versionId")) return "GetObject";
    if (method === "HEAD" && only("versionId")) return "HeadObject";
    return undefined;
  })();
  if (!op) throw new S3Error("NotImplemented", {}, `The stand-in does not implement ${method} ${url.pathname}?${q}`);
  return { op, bucket, key };
}

/**
 * `policies`: identity policies by access key id (the hosts' credentials -> the hosts' instance
 * role, as the program builds it; `enforce` adds one later). A request signed with such a key
 * is authorised as AWS would, by @cloud-copilot/iam-simulate: a denied call is AccessDenied,
 * and a missing key is a 404 only if the policy allows s3:ListBucket (else 403, as S3
 * answers). Requests signed with any other key (the operator's, the release CLI's) are allowed.
 */
export async function startAwsStandIn(
  opts: { host?: string; port?: number; policies?: Record<string, PolicyDoc> } = {},
): Promise<AwsStandIn> {
  const buckets = new Map<string, StoredBucket>();
  const policies = new Map<string, PolicyDoc>(Object.entries(opts.policies ?? {}));
  const accessKeyOf = (req: http.IncomingMessage) =>
    /Credential=([^/,\s]+)\//.exec(header(req, "authorization") ?? "")?.[1] ??
    new URL(req.url ?? "/", "http://h").searchParams.get("X-Amz-Credential")?.split("/")[0];
  // Decisions are pure functions of (policy, action, resource): computed once each, so the
  // simulator adds no latency to repeated calls (a test's timing stays what it was).
  const decisions = new Map<string, Promise<boolean>>();
  const allowed = async (req: http.IncomingMessage, action: string, resource: string) => {
    const key = accessKeyOf(req) ?? "";
    const policy = policies.get(key);
    if (!policy) return true;
    const memo = `${key} ${action} ${resource}`;
    if (!decisions.has(memo)) {
      decisions.set(
        memo,
        decide(policy, action, resource, {}, `arn:aws:iam::${ACCOUNT}:role/host`).then((d) => d === "Allowed"),
      );
    }
    return decisions.get(memo)!;
  };
  const s3Arn = (bucket: string, key?: string) => `arn:aws:s3:::${bucket}${key === undefined ? "" : `/${key}`}`;
  async function authoriseS3(
    req: http.IncomingMessage,
    url: URL,
    op: S3Op,
    bucket: string,
    key: string,
  ): Promise<void> {
    const authorise = async (action: string, resource: string, denied: () => Error) => {
      if (!(await allowed(req, action, resource))) throw denied();
    };
    const deny = () => new S3Error("AccessDenied");
    const object = (action: string) => authorise(action, s3Arn(bucket, key), deny);
    switch (op) {
      case "ListBuckets":
        return authorise("s3:ListAllMyBuckets", "*", deny);
      case "CreateBucket":
        return authorise("s3:CreateBucket", s3Arn(bucket), deny);
      case "HeadBucket":
      case "ListObjectsV2":
        return authorise("s3:ListBucket", s3Arn(bucket), deny);
      case "ListObjectVersions":
        return authorise("s3:ListBucketVersions", s3Arn(bucket), deny);
      case "DeleteObjects":
        return authorise("s3:DeleteObject", s3Arn(bucket, "*"), deny);
      case "CopyObject": {
        const source = copySource(req);
        const action = source.versionId ? "s3:GetObjectVersion" : "s3:GetObject";
        await authorise(action, s3Arn(source.bucket, source.key), deny);
        return object("s3:PutObject");
      }
      case "PutObject":
      case "CreateMultipartUpload":
      case "UploadPart":
      case "CompleteMultipartUpload":
        return object("s3:PutObject");
      case "GetObject":
      case "HeadObject":
        await object(url.searchParams.has("versionId") ? "s3:GetObjectVersion" : "s3:GetObject");
        // S3 says 404 for a missing key only to a caller that may list the bucket.
        if (!buckets.get(bucket)?.objects.has(key)) await authorise("s3:ListBucket", s3Arn(bucket), deny);
        return;
      case "DeleteObject":
        return object("s3:DeleteObject");
      case "DeleteObjectVersion":
        return object("s3:DeleteObjectVersion");
      case "AbortMultipartUpload":
        return object("s3:AbortMultipartUpload");
    }
  }
  const uploads = new Map<string, MultipartUpload>();
  const parameters = new Map<string, Parameter>();
  const faults = new Map<string, number>();
  const switched = new Map<string, "throttle" | "error" | { delayMs: number }>();
  const log: { op: string; target: string; status: number }[] = [];

  const requestId = () => crypto.randomBytes(8).toString("hex").toUpperCase();
  const record = (ctx: Ctx, status: number) => {
    if (!ctx.logged) log.push({ op: ctx.op, target: ctx.target, status });
    ctx.logged = true;
  };
  const send = (res: http.ServerResponse, ctx: Ctx, status: number, headers: http.OutgoingHttpHeaders, body = "") => {
    record(ctx, status);
    const id = requestId();
    const length = Buffer.byteLength(body);
    res.writeHead(status, { "x-amz-request-id": id, "x-amzn-RequestId": id, "Content-Length": length, ...headers });
    res.end(body);
  };
  const sendXml = (res: http.ServerResponse, ctx: Ctx, root: string, body: string, headers = {}) =>
    send(res, ctx, 200, { "Content-Type": "application/xml", ...headers }, xmlDoc(root, body));

  /** "error" (a 500), "throttle", or undefined; a switched-on delay is waited out here. */
  const takeFault = async (op: string): Promise<"error" | "throttle" | undefined> => {
    const left = faults.get(op) ?? 0;
    if (left > 0) {
      faults.set(op, left - 1);
      return "error";
    }
    const on = switched.get(op);
    if (typeof on === "object") {
      await new Promise((r) => setTimeout(r, on.delayMs));
      return undefined;
    }
    return on;
  };
  const bucketOf = (name: string) => {
    const b = buckets.get(name);
    if (!b) throw new S3Error("NoSuchBucket", { BucketName: name });
    return b;
  };
  const objectOf = (bucket: string, key: string) => {
    const o = bucketOf(bucket).objects.get(key);
    if (!o) throw new S3Error("NoSuchKey", { Key: key });
    return o;
  };
  const uploadOf = (id: string | null, bucket: string, key: string) => {
    const u = id === null ? undefined : uploads.get(id);
    if (!u || u.bucket !== bucket || u.key !== key) throw new S3Error("NoSuchUpload", { UploadId: id ?? "" });
    return u;
  };
  const enableVersioning = (name: string) => {
    const b = bucketOf(name);
    b.versions ??= new Map([...b.objects].map(([k, o]) => [k, [o]]));
  };
  const newVersionId = () => crypto.randomBytes(24).toString("base64url");
  const store = (bucket: string, key: string, p: Payload, etag: string, headers: Record<string, string>) => {
    const b = bucketOf(bucket);
    const obj: StoredObject = {
      segments: p.segments,
      size: p.size,
      checksums: p.checksums,
      etag,
      lastModified: nowSeconds(),
      headers,
      versionId: b.versions ? newVersionId() : "null",
    };
    b.objects.set(key, obj);
    if (b.versions) b.versions.set(key, [...(b.versions.get(key) ?? []), obj]);
    return obj;
  };
  /** DeleteObject without a version: gone, or in a versioned bucket hidden behind a new delete marker. */
  const remove = (bucket: string, key: string): StoredObject | undefined => {
    const b = bucketOf(bucket);
    b.objects.delete(key);
    if (!b.versions) return undefined;
    const marker: StoredObject = {
      segments: [],
      size: 0,
      checksums: {},
      etag: "",
      lastModified: nowSeconds(),
      headers: {},
      versionId: newVersionId(),
      deleteMarker: true,
    };
    b.versions.set(key, [...(b.versions.get(key) ?? []), marker]);
    return marker;
  };
  const versionOf = (bucket: string, key: string, versionId: string): StoredObject => {
    const b = bucketOf(bucket);
    const found = b.versions
      ? b.versions.get(key)?.find((v) => v.versionId === versionId)
      : versionId === "null"
        ? b.objects.get(key)
        : undefined;
    if (!found) throw new S3Error("NoSuchVersion", { Key: key, VersionId: versionId });
    return found;
  };
  const versionHeader = (bucket: string, obj: StoredObject): Record<string, string> =>
    bucketOf(bucket).versions ? { "x-amz-version-id": obj.versionId } : {};

  function versionListing(bucket: string, q: URLSearchParams): string {
    const b = bucketOf(bucket);
    const prefix = q.get("prefix") ?? "";
    const maxKeys = Math.min(Number(q.get("max-keys") ?? 1000), 1000);
    if (!Number.isInteger(maxKeys) || maxKeys < 0) throw new S3Error("InvalidArgument", { ArgumentName: "max-keys" });
    const keyMarker = q.get("key-marker") ?? "";
    const versionMarker = q.get("version-id-marker") ?? "";
    if (versionMarker && !keyMarker) {
      throw new S3Error(
        "InvalidArgument",
        { ArgumentName: "version-id-marker" },
        "A version-id marker cannot be specified without a key marker.",
      );
    }
    const urlEncoded = q.get("encoding-type") === "url";
    const encode = (s: string) => (urlEncoded ? encodeURIComponent(s).replace(/%2F/g, "/") : s);
    // Keys in order, each key's versions newest first, as S3 lists them.
    const all: { key: string; v: StoredObject; latest: boolean }[] = [];
    const keys = b.versions ? [...b.versions.keys()] : [...b.objects.keys()];
    for (const key of keys.filter((k) => k.startsWith(prefix)).sort()) {
      const versions = b.versions ? [...b.versions.get(key)!].reverse() : [b.objects.get(key)!];
      versions.forEach((v, i) => all.push({ key, v, latest: i === 0 }));
    }
    let start = 0;
    if (keyMarker) {
      const at = versionMarker ? all.findIndex((e) => e.key === keyMarker && e.v.versionId === versionMarker) : -1;
      start = at >= 0 ? at + 1 : all.findIndex((e) => e.key > keyMarker);
      if (start < 0) start = all.length;
    }
    const page = all.slice(start, start + maxKeys);
    const truncated = start + page.length < all.length;
    let body = el("Name", bucket) + el("Prefix", encode(prefix)) + el("KeyMarker", encode(keyMarker));
    body += el("VersionIdMarker", versionMarker) + el("MaxKeys", maxKeys) + el("IsTruncated", truncated);
    if (urlEncoded) body += el("EncodingType", "url");
    if (truncated)
      body += el("NextKeyMarker", encode(page.at(-1)!.key)) + el("NextVersionIdMarker", page.at(-1)!.v.versionId);
    const owner = `<Owner>${el("ID", ACCOUNT)}${el("DisplayName", "stand-in")}</Owner>`;
    for (const { key, v, latest } of page) {
      const common = el("Key", encode(key)) + el("VersionId", v.versionId) + el("IsLatest", latest);
      if (v.deleteMarker) {
        body += `<DeleteMarker>${common}${el("LastModified", v.lastModified.toISOString())}${owner}</DeleteMarker>`;
      } else {
        const storage = v.headers["x-amz-storage-class"] ?? "STANDARD";
        body += `<Version>${common}${el("LastModified", v.lastModified.toISOString())}${el("ETag", v.etag)}`;
        body += `${el("Size", v.size)}${el("StorageClass", storage)}${owner}</Version>`;
      }
    }
    return body;
  }

  function listing(bucket: string, q: URLSearchParams): string {
    const objects = bucketOf(bucket).objects;
    const prefix = q.get("prefix") ?? "";
    const delimiter = q.get("delimiter") ?? "";
    const maxKeys = Math.min(Number(q.get("max-keys") ?? 1000), 1000);
    if (!Number.isInteger(maxKeys) || maxKeys < 0) throw new S3Error("InvalidArgument", { ArgumentName: "max-keys" });
    const continuation = q.get("continuation-token");
    const after = continuation !== null ? token.decode(continuation) : (q.get("start-after") ?? "");
    // awscli always asks for url encoding and decodes with unquote_plus, so a '+' in a key must be escaped.
    const urlEncoded = q.get("encoding-type") === "url";
    const encode = (s: string) => (urlEncoded ? encodeURIComponent(s).replace(/%2F/g, "/") : s);
    // Keys sharing a common prefix sort contiguously, so one pass folds them into that prefix.
    const entries: { name: string; obj?: StoredObject }[] = [];
    for (const k of [...objects.keys()].filter((k) => k.startsWith(prefix)).sort()) {
      const cut = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
      const common = cut < 0 ? undefined : k.slice(0, cut + delimiter.length);
      if (!common) entries.push({ name: k, obj: objects.get(k) });
      else if (entries.at(-1)?.name !== common) entries.push({ name: common });
    }
    const pending = entries.filter((e) => e.name > after);
    const page = pending.slice(0, maxKeys);
    let body = el("Name", bucket) + el("Prefix", encode(prefix)) + el("MaxKeys", maxKeys) + el("KeyCount", page.length);
    body += el("IsTruncated", pending.length > page.length);
    if (delimiter) body += el("Delimiter", encode(delimiter));
    if (urlEncoded) body += el("EncodingType", "url");
    if (continuation !== null) body += el("ContinuationToken", continuation);
    if (q.has("start-after")) body += el("StartAfter", encode(q.get("start-after")!));
    if (pending.length > page.length) body += el("NextContinuationToken", token.encode(page.at(-1)!.name));
    for (const { name, obj } of page) {
      if (!obj) continue;
      const storage = obj.headers["x-amz-storage-class"] ?? "STANDARD";
      body += `<Contents>${el("Key", encode(name))}${el("LastModified", obj.lastModified.toISOString())}`;
      body += `${el("ETag", obj.etag)}${el("Size", obj.size)}${el("StorageClass", storage)}</Contents>`;
    }
    for (const { name, obj } of page) {
      if (!obj) body += `<CommonPrefixes>${el("Prefix", encode(name))}</CommonPrefixes>`;
    }
    return body;
  }

  function complete(upload: MultipartUpload, body: string): { payload: Payload; etag: string } {
    const listed = xmlTags(body, "Part").map((p) => ({
      n: Number(xmlTags(p, "PartNumber")[0]),
      etag: (xmlTags(p, "ETag")[0] ?? "").trim().replace(/^"|"$/g, ""),
    }));
    if (listed.length === 0) throw new S3Error("MalformedXML");
    const parts = listed.map(({ n, etag }, i) => {
      if (i > 0 && n <= listed[i - 1].n) throw new S3Error("InvalidPartOrder");
      const part = upload.parts.get(n);
      if (!part || part.md5.toString("hex") !== etag) throw new S3Error("InvalidPart", { PartNumber: String(n) });
      // Real S3 enforces this only at completion; it catches a release CLI configured with tiny parts.
      if (i < listed.length - 1 && part.size < MIN_PART_SIZE) {
        throw new S3Error("EntityTooSmall", { ProposedSize: String(part.size), MinSizeAllowed: String(MIN_PART_SIZE) });
      }
      return part;
    });
    const md5OfMd5s = crypto.createHash("md5").update(Buffer.concat(parts.map((p) => p.md5)));
    return {
      etag: `"${md5OfMd5s.digest("hex")}-${parts.length}"`,
      payload: {
        segments: parts.flatMap((p) => p.segments),
        size: parts.reduce((sum, p) => sum + p.size, 0),
        checksums: {},
      },
    };
  }

  async function handleS3(req: http.IncomingMessage, res: http.ServerResponse, url: URL, ctx: Ctx): Promise<void> {
    const { op, bucket, key } = classifyS3(req, url);
    ctx.op = op;
    ctx.target = key ? `${bucket}/${key}` : bucket;
    const q = url.searchParams;
    const fault = await takeFault(op);
    if (fault) throw new S3Error(fault === "throttle" ? "SlowDown" : "InternalError");
    await authoriseS3(req, url, op, bucket, key);
    switch (op) {
      case "ListBuckets": {
        const owner = `<Owner>${el("ID", ACCOUNT)}${el("DisplayName", "stand-in")}</Owner>`;
        const list = [...buckets].map(
          ([n, b]) => `<Bucket>${el("Name", n)}${el("CreationDate", b.created.toISOString())}</Bucket>`,
        );
        return sendXml(res, ctx, "ListAllMyBucketsResult", `${owner}<Buckets>${list.join("")}</Buckets>`);
      }
      case "CreateBucket":
        await drain(req);
        if (buckets.has(bucket)) throw new S3Error("BucketAlreadyOwnedByYou", { BucketName: bucket });
        buckets.set(bucket, { created: nowSeconds(), objects: new Map() });
        return send(res, ctx, 200, { Location: `/${bucket}` });
      case "HeadBucket":
        bucketOf(bucket);
        return send(res, ctx, 200, { "x-amz-bucket-region": "us-east-1" });
      case "ListObjectsV2":
        return sendXml(res, ctx, "ListBucketResult", listing(bucket, q));
      case "ListObjectVersions":
        return sendXml(res, ctx, "ListVersionsResult", versionListing(bucket, q));
      case "DeleteObjects": {
        const body = await readSmall(req);
        const entries = xmlTags(body, "Object");
        const keys = entries.map((o) => xmlTags(o, "Key")[0] ?? "");
        if (keys.length === 0 || keys.length > 1000) throw new S3Error("MalformedXML");
        if (entries.some((o) => xmlTags(o, "VersionId").length > 0)) {
          throw new S3Error("NotImplemented", {}, "The stand-in does not implement DeleteObjects of versions.");
        }
        keys.forEach((k) => remove(bucket, k));
        const quiet = /<Quiet>\s*true\s*<\/Quiet>/i.test(body);
        const deleted = quiet ? "" : keys.map((k) => `<Deleted>${el("Key", k)}</Deleted>`).join("");
        return sendXml(res, ctx, "DeleteResult", deleted);
      }
      case "PutObject": {
        bucketOf(bucket);
        const headers = keptHeaders(req);
        const p = await readPayload(req);
        const obj = store(bucket, key, p, `"${p.md5.toString("hex")}"`, headers);
        const extra = { ...sseHeaders(headers), ...checksumHeaders(p), ...versionHeader(bucket, obj) };
        return send(res, ctx, 200, { ETag: obj.etag, ...extra });
      }
      case "CopyObject": {
        await drain(req);
        const source = copySource(req);
        const src = source.versionId
          ? versionOf(source.bucket, source.key, source.versionId)
          : objectOf(source.bucket, source.key);
        // S3 answers a copy of a delete marker version 400 InvalidRequest.
        if (src.deleteMarker)
          throw new S3Error(
            "InvalidRequest",
            {},
            "The source of a copy request may not specifically refer to a delete marker by version id.",
          );
        const replace = header(req, "x-amz-metadata-directive") === "REPLACE";
        const headers = replace ? keptHeaders(req) : { ...src.headers, ...sseHeaders(keptHeaders(req)) };
        const obj = store(bucket, key, { ...src, checksums: {} }, src.etag, headers);
        const result = el("LastModified", obj.lastModified.toISOString()) + el("ETag", obj.etag);
        const versions = {
          ...versionHeader(bucket, obj),
          ...(bucketOf(source.bucket).versions ? { "x-amz-copy-source-version-id": src.versionId } : {}),
        };
        return sendXml(res, ctx, "CopyObjectResult", result, { ...sseHeaders(headers), ...versions });
      }
      case "GetObject":
      case "HeadObject": {
        const versionId = q.get("versionId");
        const obj = versionId !== null ? versionOf(bucket, key, versionId) : objectOf(bucket, key);
        if (obj.deleteMarker)
          throw new S3Error("MethodNotAllowed", { Method: req.method ?? "GET", ResourceType: "DeleteMarker" });
        const range = parseRange(header(req, "range"), obj.size);
        const [start, end] = range ?? [0, obj.size];
        const headers: http.OutgoingHttpHeaders = {
          ...obj.headers,
          ETag: obj.etag,
          "Last-Modified": obj.lastModified.toUTCString(),
          "Accept-Ranges": "bytes",
          "Content-Length": end - start,
          ...versionHeader(bucket, obj),
        };
        for (const [k, v] of q) if (k.startsWith("response-")) headers[k.slice("response-".length)] = v;
        if (range) headers["Content-Range"] = `bytes ${start}-${end - 1}/${obj.size}`;
        record(ctx, range ? 206 : 200);
        res.writeHead(range ? 206 : 200, { "x-amz-request-id": requestId(), ...headers });
        if (op === "GetObject") for (const seg of slice(obj.segments, start, end)) res.write(seg);
        return void res.end();
      }
      case "DeleteObject": {
        await drain(req);
        const marker = remove(bucket, key);
        return send(
          res,
          ctx,
          204,
          marker ? { "x-amz-delete-marker": "true", "x-amz-version-id": marker.versionId } : {},
        );
      }
      case "DeleteObjectVersion": {
        await drain(req);
        const b = bucketOf(bucket);
        const versionId = q.get("versionId")!;
        const versions = (b.versions?.get(key) ?? []).filter((v) => v.versionId !== versionId);
        if (b.versions) {
          b.versions.set(key, versions);
          const latest = versions.at(-1);
          if (latest && !latest.deleteMarker) b.objects.set(key, latest);
          else b.objects.delete(key);
        } else if (versionId === "null") b.objects.delete(key);
        return send(res, ctx, 204, { "x-amz-version-id": versionId });
      }
      case "CreateMultipartUpload": {
        await drain(req);
        bucketOf(bucket);
        const headers = keptHeaders(req);
        const id = crypto.randomBytes(24).toString("base64url");
        uploads.set(id, { bucket, key, headers, parts: new Map() });
        const algorithm = header(req, "x-amz-checksum-algorithm");
        const extra = { ...sseHeaders(headers), ...(algorithm ? { "x-amz-checksum-algorithm": algorithm } : {}) };
        const body = el("Bucket", bucket) + el("Key", key) + el("UploadId", id);
        return sendXml(res, ctx, "InitiateMultipartUploadResult", body, extra);
      }
      case "UploadPart": {
        const upload = uploadOf(q.get("uploadId"), bucket, key);
        const n = Number(q.get("partNumber"));
        if (!Number.isInteger(n) || n < 1 || n > 10000) {
          throw new S3Error("InvalidArgument", { ArgumentName: "partNumber" }, "Part number must be within 1-10000");
        }
        const p = await readPayload(req);
        upload.parts.set(n, p);
        const etag = `"${p.md5.toString("hex")}"`;
        return send(res, ctx, 200, { ETag: etag, ...sseHeaders(upload.headers), ...checksumHeaders(p) });
      }
      case "CompleteMultipartUpload": {
        const body = await readSmall(req);
        const upload = uploadOf(q.get("uploadId"), bucket, key);
        const { payload, etag } = complete(upload, body);
        const obj = store(bucket, key, payload, etag, upload.headers);
        uploads.delete(q.get("uploadId")!);
        const location = `http://${req.headers.host}/${bucket}/${encodeURI(key)}`;
        const result = el("Location", location) + el("Bucket", bucket) + el("Key", key) + el("ETag", etag);
        const extra = { ...sseHeaders(upload.headers), ...versionHeader(bucket, obj) };
        return sendXml(res, ctx, "CompleteMultipartUploadResult", result, extra);
      }
      case "AbortMultipartUpload":
        await drain(req);
        uploadOf(q.get("uploadId"), bucket, key);
        uploads.delete(q.get("uploadId")!);
        return send(res, ctx, 204, {});
    }
  }

  // ---- SSM (JSON 1.1: POST / with X-Amz-Target: AmazonSSM.<Op>) ----

  const view = (p: Parameter, decrypt: boolean, region: string) => ({
    Name: p.name,
    Type: p.type,
    Value: p.type === "SecureString" && !decrypt ? p.sealed : p.value,
    Version: p.version,
    LastModifiedDate: p.lastModified.getTime() / 1000,
    ARN: `arn:aws:ssm:${region}:${ACCOUNT}:parameter${p.name.startsWith("/") ? "" : "/"}${p.name}`,
    DataType: "text",
  });
  const invalid = (message: string) => new SsmError("ValidationException", message);
  const notFound = (name: string) => new SsmError("ParameterNotFound", `Parameter ${name} not found.`);
  const put = (name: string, value: string, type: string, overwrite: boolean) => {
    if (!/^[a-zA-Z0-9_.\-/]{1,2048}$/.test(name)) throw invalid(`Parameter name: ${name} is invalid.`);
    const old = parameters.get(name);
    if (old && !overwrite) throw new SsmError("ParameterAlreadyExists", "The parameter already exists.");
    if (!["String", "StringList", "SecureString"].includes(type)) throw invalid(`Type ${type} is not valid.`);
    if (value.length === 0 || value.length > 4096) throw invalid("Value must be 1 to 4096 characters (Standard tier).");
    const version = (old?.version ?? 0) + 1;
    // Ciphertext-like and unrelated to the value, so a missing WithDecryption is visible, never leaky.
    const sealed = crypto.randomBytes(48).toString("base64");
    parameters.set(name, { name, type, value, version, lastModified: new Date(), sealed });
    return version;
  };

  function byPath(input: Record<string, unknown>): { page: Parameter[]; next?: string } {
    const path = input.Path;
    if (typeof path !== "string" || !path.startsWith("/")) throw invalid("The path must begin with a forward slash.");
    if (input.ParameterFilters !== undefined) throw invalid("The stand-in does not implement ParameterFilters.");
    const max = input.MaxResults ?? 10;
    if (!Number.isInteger(max) || (max as number) < 1 || (max as number) > 10) {
      throw invalid(`Value '${max}' at 'maxResults' failed to satisfy constraint: Member must be between 1 and 10`);
    }
    const base = path.endsWith("/") ? path : `${path}/`;
    const after = typeof input.NextToken === "string" ? token.decode(input.NextToken) : "";
    const matching = [...parameters.values()]
      .filter((p) => p.name.startsWith(base) && (input.Recursive === true || !p.name.slice(base.length).includes("/")))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .filter((p) => p.name > after);
    const page = matching.slice(0, max as number);
    return { page, next: matching.length > page.length ? token.encode(page.at(-1)!.name) : undefined };
  }

  async function handleSsm(req: http.IncomingMessage, res: http.ServerResponse, ctx: Ctx): Promise<void> {
    ctx.op = header(req, "x-amz-target")!.slice("AmazonSSM.".length);
    let input: Record<string, unknown>;
    try {
      input = JSON.parse((await readSmall(req)) || "{}");
    } catch {
      throw new SsmError("SerializationException", "Malformed JSON request body");
    }
    const str = (k: string) => (typeof input[k] === "string" ? (input[k] as string) : undefined);
    const decrypt = input.WithDecryption === true;
    // ARNs carry the caller's region, as AWS's do; the CLI puts it in the credential scope.
    const region = /Credential=[^/]+\/\d+\/([^/]+)\//.exec(header(req, "authorization") ?? "")?.[1] ?? "us-east-1";
    const reply = (out: unknown) =>
      send(res, ctx, 200, { "Content-Type": "application/x-amz-json-1.1" }, JSON.stringify(out));
    const paramArn = (name: string) =>
      `arn:aws:ssm:${region}:${ACCOUNT}:parameter${name.startsWith("/") ? "" : "/"}${name}`;
    const deny = (action: string, arn: string) => () =>
      new SsmError(
        "AccessDeniedException",
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/host is not authorized to perform: ${action} on resource: ${arn}`,
      );
    const may = async (action: string, name: string) => {
      if (!(await allowed(req, action, paramArn(name)))) throw deny(action, paramArn(name))();
    };
    if (ctx.op === "GetParametersByPath")
      await may("ssm:GetParametersByPath", (str("Path") ?? "/").replace(/(.)\/$/, "$1"));
    else if (ctx.op === "GetParameters")
      for (const n of Array.isArray(input.Names) ? (input.Names as string[]) : []) await may("ssm:GetParameters", n);
    else if (["GetParameter", "PutParameter", "DeleteParameter"].includes(ctx.op))
      await may(`ssm:${ctx.op}`, str("Name") ?? "");
    ctx.target = str("Path") ?? str("Name") ?? (Array.isArray(input.Names) ? input.Names.join(",") : "");
    const fault = await takeFault(ctx.op);
    if (fault === "throttle") throw new SsmError("ThrottlingException", "Rate exceeded", 400);
    if (fault) throw new SsmError("InternalServerError", "An internal error occurred.", 500);
    switch (ctx.op) {
      case "GetParametersByPath": {
        const { page, next } = byPath(input);
        return reply({ Parameters: page.map((p) => view(p, decrypt, region)), ...(next ? { NextToken: next } : {}) });
      }
      case "GetParameter": {
        const p = parameters.get(str("Name") ?? "");
        if (!p) throw notFound(str("Name") ?? "");
        return reply({ Parameter: view(p, decrypt, region) });
      }
      case "GetParameters": {
        const names = Array.isArray(input.Names) ? input.Names.map(String) : [];
        if (names.length < 1 || names.length > 10) throw invalid("Names must have between 1 and 10 members.");
        return reply({
          Parameters: names.filter((n) => parameters.has(n)).map((n) => view(parameters.get(n)!, decrypt, region)),
          InvalidParameters: names.filter((n) => !parameters.has(n)),
        });
      }
      case "PutParameter": {
        const name = str("Name") ?? "";
        const type = str("Type") ?? parameters.get(name)?.type;
        if (!type) throw invalid("A parameter type is required when you create a parameter.");
        return reply({ Version: put(name, str("Value") ?? "", type, input.Overwrite === true), Tier: "Standard" });
      }
      case "DeleteParameter":
        if (!parameters.delete(str("Name") ?? "")) throw notFound(str("Name") ?? "");
        return reply({});
      default:
        throw new SsmError("UnknownOperationException", `The stand-in does not implement ${ctx.op}.`);
    }
  }

  const server = http.createServer((req, res) => {
    const ctx: Ctx = { op: "Unknown", target: req.url ?? "", logged: false };
    const ssm = (header(req, "x-amz-target") ?? "").startsWith("AmazonSSM.");
    const work = ssm ? handleSsm(req, res, ctx) : handleS3(req, res, new URL(req.url ?? "/", "http://h"), ctx);
    work
      .catch(async (e: unknown) => {
        // Drain first: both clients send `Expect: 100-continue` bodies and reuse connections.
        await drain(req);
        if (res.headersSent) return void res.destroy();
        if (ssm) {
          const err = e instanceof SsmError ? e : new SsmError("InternalServerError", String(e), 500);
          const body = JSON.stringify({ __type: err.code, message: err.message });
          return send(res, ctx, err.status, { "Content-Type": "application/x-amz-json-1.1" }, body);
        }
        const err = e instanceof S3Error ? e : new S3Error("InternalError", {}, String(e));
        const extra = Object.entries(err.extra).map(([k, v]) => el(k, v));
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el("Code", err.code)}${el("Message", err.message)}${extra.join("")}</Error>`;
        // Like S3, a HEAD error has no body, which is why the CLI reports those as a bare "404".
        send(res, ctx, err.status, { "Content-Type": "application/xml" }, req.method === "HEAD" ? "" : body);
      })
      .catch(() => res.destroy());
  });

  // No per-request deadline (a slow host may stream a large artifact), and idle connections outlive
  // any pause in a test, so a client never reuses a socket the server is just closing.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  return {
    endpoint: `http://${host}:${address.port}`,
    createBucket(name, o = {}) {
      if (!buckets.has(name)) buckets.set(name, { created: nowSeconds(), objects: new Map() });
      if (o.versioned) enableVersioning(name);
    },
    enableVersioning,
    putParameter(name, value, type) {
      put(name, value, type, true);
    },
    deleteParameter(name) {
      parameters.delete(name);
    },
    enforce(accessKeyId, policy) {
      policies.set(accessKeyId, policy);
      decisions.clear();
    },
    putObject(bucket, key, body) {
      bucketOf(bucket);
      const md5 = crypto.createHash("md5").update(body).digest("hex");
      store(bucket, key, { segments: [body], size: body.length, checksums: {} }, `"${md5}"`, {});
    },
    getObject(bucket, key) {
      const o = buckets.get(bucket)?.objects.get(key);
      return o && Buffer.concat(o.segments, o.size);
    },
    listKeys(bucket, prefix = "") {
      return [...(buckets.get(bucket)?.objects.keys() ?? [])].filter((k) => k.startsWith(prefix)).sort();
    },
    failNext(op, count = 1) {
      faults.set(op, (faults.get(op) ?? 0) + count);
    },
    fault(op, kind) {
      switched.set(op, kind);
    },
    clearFaults() {
      faults.clear();
      switched.clear();
    },
    requests() {
      return log.map((r) => ({ ...r }));
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Keep-alive sockets (the SDK's, the CLI's) would otherwise hold close() open.
        server.closeAllConnections();
        buckets.clear();
        uploads.clear();
      });
    },
  };
}
