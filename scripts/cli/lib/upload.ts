// Uploads a release artifact with the AWS SDK (multipart for big files, via lib-storage).
// Artifacts are content-addressed, so an object already at the key is the same bytes: skip it.
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { createHash } from "crypto";
import * as fs from "fs";

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    fs.createReadStream(file)
      .on("error", reject)
      .on("data", (d) => h.update(d))
      .on("end", () => resolve(h.digest("hex")));
  });
}

/**
 * An S3 client for `region`. AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL point it at a stand-in
 * (LocalStack, the rehearsal), which also needs path-style addressing.
 */
export function s3Client(region: string): S3Client {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  return new S3Client({ region, ...(endpoint ? { endpoint, forcePathStyle: true } : {}) });
}

export async function uploadArtifact(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  sha256: string,
): Promise<"uploaded" | "present"> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (head.ContentLength === fs.statSync(file).size) return "present";
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 404 && status !== 403) throw e; // 403: no ListBucket permission, object may be absent
  }
  await new Upload({
    client: s3,
    params: {
      Bucket: bucket,
      Key: key,
      Body: fs.createReadStream(file),
      ContentType: "application/gzip",
      Metadata: { sha256 },
    },
  }).done();
  return "uploaded";
}
