//! Uploads of every shape: presigned (the client's `upload`), chunked, resumed after a dropped
//! connection, expired; limits; unsafe names; the routes' OpenAPI description.

use objectos_http::RouteContribution;
use objectos_storage::PLUGIN_ID;
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::on_both;
use crate::support::{Harness, PDF, PNG, Req, complete_of, padded_pdf, url_of};

const MIB: usize = 1024 * 1024;

async fn presigned_upload_and_download(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    // The client claims a PNG; the content is a PDF, and the content wins.
    let presigned = h
        .call(
            Req::post(
                "/api/v1/storage/upload/presigned",
                json!({ "filename": "offer.pdf", "mimeType": "image/png", "size": PDF.len(), "scope": "user" }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!(presigned.status, 200, "{}", presigned.text());
    let data = presigned.json()["data"].clone();
    assert_eq!(data["method"], "PUT");
    assert_eq!(data["expiresIn"], 3600);
    let file_id = data["fileId"].as_str().unwrap().to_owned();
    assert_eq!(
        data["downloadUrl"],
        format!("/api/v1/storage/files/{file_id}/url")
    );
    let upload_url = data["uploadUrl"].as_str().unwrap().to_owned();
    assert!(
        upload_url.starts_with("/api/v1/storage/_local/raw/"),
        "{upload_url}"
    );

    // Not readable before it is complete.
    let early = h
        .call(Req::get(&format!("/api/v1/storage/files/{file_id}/url")).user("u1", "org1"))
        .await;
    assert_eq!((early.status, early.code()), (404, "FILE_NOT_FOUND".into()));

    // The raw PUT needs no credentials: the signed URL is the credential.
    let put = h.call(Req::put(&upload_url, PDF.to_vec())).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        put.json()["data"]["key"]
            .as_str()
            .unwrap()
            .ends_with(&file_id)
    );

    let done = h.call(complete_of("u1", "org1", &json!(file_id))).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let info = done.json()["data"].clone();
    assert_eq!(info["fileId"], file_id.as_str());
    assert_eq!(info["name"], "offer.pdf");
    assert_eq!(info["size"], PDF.len());
    assert_eq!(info["mimeType"], "application/pdf");
    assert_eq!(info["etag"], hex::encode(Sha256::digest(PDF)));

    // The record is an ordinary object: owner and organization stamped.
    let rec = h.file_record(&file_id).await;
    assert_eq!(rec["owner_id"], "u1");
    assert_eq!(rec["organization_id"], "org1");
    assert_eq!(rec["checksum"], hex::encode(Sha256::digest(PDF)));

    // Completing again answers the same file; a second PUT to the URL is refused, the file
    // is complete.
    let twice = h.call(complete_of("u1", "org1", &json!(file_id))).await;
    assert_eq!(twice.status, 200, "{}", twice.text());
    assert_eq!(twice.json()["data"], info);
    let again = h.call(Req::put(&upload_url, b"x".to_vec())).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "INVALID_STATE".into()),
        "{}",
        again.text()
    );

    // The owner gets a signed URL and the 302; the bytes come back whole and in ranges.
    let url = h
        .call(Req::get(&format!("/api/v1/storage/files/{file_id}/url")).user("u1", "org1"))
        .await;
    assert_eq!(url.status, 200, "{}", url.text());
    let signed = url.json()["data"]["url"].as_str().unwrap().to_owned();
    let redirect = h
        .call(Req::get(&format!("/api/v1/storage/files/{file_id}")).user("u1", "org1"))
        .await;
    assert_eq!(redirect.status, 302, "{}", redirect.text());
    assert!(redirect.headers["location"].starts_with("/api/v1/storage/_local/raw/"));
    let body = h.call(Req::get(&signed)).await;
    assert_eq!(body.status, 200);
    assert_eq!(body.body, PDF);
    assert_eq!(body.headers["content-type"], "application/pdf");
    assert!(body.headers["content-disposition"].contains("offer.pdf"));
    let part = h.call(Req::get(&signed).header("range", "bytes=0-4")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, b"%PDF-");
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 0-4/{}", PDF.len())
    );
    let past = h
        .call(Req::get(&signed).header("range", &format!("bytes={}-", PDF.len() + 10)))
        .await;
    assert_eq!(past.status, 416, "{}", past.text());

    // Another member, another organization and an anonymous caller get nothing.
    for (user, org) in [("u2", "org1"), ("u1", "org2")] {
        let r = h
            .call(Req::get(&format!("/api/v1/storage/files/{file_id}/url")).user(user, org))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (404, "FILE_NOT_FOUND".into()),
            "{user} {org}"
        );
    }
    let anonymous = h
        .call(Req::get(&format!("/api/v1/storage/files/{file_id}/url")))
        .await;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "AUTH_REQUIRED".into())
    );

    // A tampered token is refused.
    let mut tampered = signed.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let bad = h.call(Req::get(&tampered)).await;
    assert_eq!((bad.status, bad.code()), (403, "INVALID_TOKEN".into()));
    // An upload token does not download.
    let wrong_op = h.call(Req::get(&upload_url)).await;
    assert_eq!(
        (wrong_op.status, wrong_op.code()),
        (403, "INVALID_TOKEN".into())
    );

    // Every mounted route is documented, and the served document has them.
    let routes: Vec<RouteContribution> = h
        .kernel
        .registry()
        .contributions::<RouteContribution>()
        .unwrap()
        .iter()
        .filter(|c| c.plugin == PLUGIN_ID)
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].undocumented(), Vec::new());
    let doc = h.call(Req::get("/api/v1/openapi.json")).await;
    assert_eq!(
        objectos_http::routes::openapi::missing_operations(&doc.json(), &routes),
        Vec::<String>::new()
    );
    // Discovery advertises the client's `storage` route.
    let discovery = h.call(Req::get("/api/v1/discovery")).await;
    assert_eq!(
        discovery.json()["data"]["routes"]["storage"]
            .as_str()
            .or(discovery.json()["routes"]["storage"].as_str()),
        Some("/api/v1/storage"),
        "{}",
        discovery.text()
    );
    h.finish().await;
}
on_both!(
    presigned_upload_and_download_sqlite,
    presigned_upload_and_download_postgres,
    presigned_upload_and_download
);

async fn signed_urls_expire(db: TestDatabase) {
    let h = Harness::boot(db, |s| s.url_ttl_seconds = 1).await;
    let done = h.upload("u1", "org1", "a.txt", b"hello world").await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["data"]["mimeType"], "text/plain");
    let id = done.json()["data"]["fileId"].as_str().unwrap().to_owned();
    let url = h
        .call(Req::get(&format!("/api/v1/storage/files/{id}/url")).user("u1", "org1"))
        .await;
    let signed = url.json()["data"]["url"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let late = h.call(Req::get(&signed)).await;
    assert_eq!((late.status, late.code()), (403, "INVALID_TOKEN".into()));
    h.finish().await;
}
on_both!(
    signed_urls_expire_sqlite,
    signed_urls_expire_postgres,
    signed_urls_expire
);

async fn limits_and_unsafe_names(db: TestDatabase) {
    let h = Harness::boot(db, |s| {
        s.max_file_size = 1000;
        s.organization_quota = Some(1500);
    })
    .await;
    // Declared too large: 413 before anything is stored.
    let big = h
        .call(
            Req::post(
                "/api/v1/storage/upload/presigned",
                json!({ "filename": "big.bin", "size": 5000 }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!(
        (big.status, big.code()),
        (413, "FILE_TOO_LARGE".into()),
        "{}",
        big.text()
    );
    // Declared small, sent large: 413 from the Content-Length, nothing stored.
    let data = h
        .presign("u1", "org1", json!({ "filename": "x.bin", "size": 10 }))
        .await;
    let put = h
        .call(Req::put(
            data["uploadUrl"].as_str().unwrap(),
            vec![b'a'; 900],
        ))
        .await;
    assert_eq!((put.status, put.code()), (413, "FILE_TOO_LARGE".into()));
    let complete = h.call(complete_of("u1", "org1", &data["fileId"])).await;
    assert_eq!(complete.status, 400, "{}", complete.text());

    // The organization's quota: 900 + 900 > 1500.
    assert_eq!(
        h.upload("u1", "org1", "one.txt", &[b'a'; 900]).await.status,
        200
    );
    let over = h
        .call(
            Req::post(
                "/api/v1/storage/upload/presigned",
                json!({ "filename": "two.txt", "size": 900 }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!((over.status, over.code()), (413, "QUOTA_EXCEEDED".into()));
    // Another organization has its own.
    assert_eq!(
        h.upload("u1", "org2", "two.txt", &[b'a'; 900]).await.status,
        200
    );

    // A field's allowed types: a PNG for a PDF-only field is 415, the PDF passes.
    for (content, status) in [(PNG, 415), (PDF, 200)] {
        let put = h.put_for_field("u1", "org3", "contract", content).await;
        assert_eq!(put.status, status, "{}", put.text());
        if status == 415 {
            assert_eq!(put.code(), "UNSUPPORTED_MEDIA_TYPE");
        }
    }
    let not_a_file_field = h
        .call(
            Req::post(
                "/api/v1/storage/upload/presigned",
                json!({ "filename": "c.pdf", "object": "account", "field": "name" }),
            )
            .user("u1", "org3"),
        )
        .await;
    assert_eq!(
        (not_a_file_field.status, not_a_file_field.code()),
        (400, "INVALID_REQUEST".into())
    );

    // Names with paths and NUL are stored under a safe name; the key never uses the name.
    for (raw, safe) in [
        ("../../etc/passwd", "passwd"),
        ("/abs/evil.txt", "evil.txt"),
        ("a\u{0}b.txt", "ab.txt"),
        ("..", "file"),
    ] {
        let done = h.upload("u1", "org4", raw, b"text").await;
        assert_eq!(done.status, 200, "{}", done.text());
        let info = done.json()["data"].clone();
        assert_eq!(info["name"], safe);
        let path = info["path"].as_str().unwrap();
        assert!(!path.contains(".."), "{path}");
        assert!(path.ends_with(info["fileId"].as_str().unwrap()), "{path}");
    }
    assert!(!h.files.path().join("etc").exists());
    // Bad bodies are 400 with the official code.
    let bad = h
        .call(
            Req::post("/api/v1/storage/upload/presigned", json!({ "size": 3 })).user("u1", "org1"),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "INVALID_REQUEST".into()));
    h.finish().await;
}
on_both!(
    limits_and_unsafe_names_sqlite,
    limits_and_unsafe_names_postgres,
    limits_and_unsafe_names
);

async fn chunked_resumed_and_expired(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let total = 5 * MIB + 1000;
    let content = padded_pdf(total, b'z');
    let c = h
        .chunked(
            "u1",
            "org1",
            json!({ "filename": "big.pdf", "mimeType": "application/pdf", "totalSize": total, "chunkSize": 1024 }),
        )
        .await;
    // The chunk size is raised to the 5 MiB minimum.
    assert_eq!(c.data["chunkSize"], 5 * MIB);
    assert_eq!(c.data["totalChunks"], 2);
    let chunk = |i: usize| c.part(i, &content[i * 5 * MIB..((i + 1) * 5 * MIB).min(total)]);

    // The second chunk first, then a first chunk whose connection drops half-way.
    let second = h.call(chunk(1)).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.json()["data"]["chunkIndex"], 1);
    assert_eq!(second.json()["data"]["bytesReceived"], 1000);
    let mut dropped = chunk(0);
    dropped.cut_after = Some(MIB);
    h.call(dropped).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Progress shows what to resume: chunk 0 is missing.
    let progress = h.call(c.progress()).await;
    assert_eq!(progress.status, 200, "{}", progress.text());
    let p = progress.json()["data"].clone();
    assert_eq!(p["uploadedChunks"], 1);
    assert_eq!(p["uploadedSize"], 1000);
    assert_eq!(p["status"], "in_progress");
    assert_eq!(p["fileId"], c.file_id.as_str());

    // A wrong resume token, an unknown session, an incomplete upload.
    let mut wrong = chunk(0);
    wrong.headers.retain(|(k, _)| k != "x-resume-token");
    let wrong = h.call(wrong.header("x-resume-token", "nope")).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (403, "INVALID_RESUME_TOKEN".into())
    );
    let unknown = h
        .call(Req::get("/api/v1/storage/upload/chunked/nope/progress").user("u1", "org1"))
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "UPLOAD_SESSION_NOT_FOUND".into())
    );
    let early = h.call(c.complete(Value::Null)).await;
    assert_eq!(
        (early.status, early.code()),
        (400, "INVALID_REQUEST".into())
    );

    // Resumed: chunk 0 again, then complete with the parts' eTags.
    let first = h.call(chunk(0)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let parts = json!([
        { "chunkIndex": 0, "eTag": first.json()["data"]["eTag"] },
        { "chunkIndex": 1, "eTag": second.json()["data"]["eTag"] },
    ]);
    let done = h.call(c.complete(parts)).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let info = done.json()["data"].clone();
    assert_eq!(info["fileId"], c.file_id.as_str());
    assert_eq!(info["size"], total);
    assert_eq!(info["mimeType"], "application/pdf");
    let body = h.download("u1", "org1", &c.file_id).await;
    assert_eq!(body.body.len(), total);
    assert!(
        body.body == content,
        "the joined file differs from what was sent"
    );
    // Nothing is left of the parts.
    for dir in ["blobs/parts", "blobs/.tmp/assembly"] {
        assert!(
            !h.files
                .path()
                .join(dir)
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some()),
            "{dir}"
        );
    }
    h.finish().await;

    // An expired session: 410 for its chunks, `expired` in progress, and the cleanup removes
    // it with its pending file.
    let db2 = TestDatabase::sqlite_file();
    let h = Harness::boot(db2, |s| s.upload_session_ttl_seconds = 1).await;
    let c = h
        .chunked(
            "u1",
            "org1",
            json!({ "filename": "x.bin", "totalSize": 10 }),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let late = h.call(c.part(0, b"0123456789")).await;
    assert_eq!(
        (late.status, late.code()),
        (410, "UPLOAD_SESSION_EXPIRED".into())
    );
    let progress = h.call(c.progress()).await;
    assert_eq!(
        progress.json()["data"]["status"],
        "expired",
        "{}",
        progress.text()
    );
    assert_eq!(h.service.cleanup_expired().await.unwrap(), 1);
    let gone = h
        .engine
        .get(
            &objectos_data::OpContext::system("t"),
            "sys_file",
            &c.file_id,
            Default::default(),
        )
        .await;
    assert!(gone.is_err(), "{gone:?}");
    let after = h.call(c.progress()).await;
    assert_eq!(after.code(), "UPLOAD_SESSION_NOT_FOUND");
    h.finish().await;
}
on_both!(
    chunked_resumed_and_expired_sqlite,
    chunked_resumed_and_expired_postgres,
    chunked_resumed_and_expired
);

/// A chunked upload is never visible half-way: parts sent out of order and one cut off leave
/// no file under the key and a `pending` record only; completing with a part missing, or naming
/// a wrong eTag, is a stable 400 that leaves the session resumable; completing twice answers the
/// same file; a part after completion is refused; nothing is left in the temporary folder.
async fn chunked_parts_out_of_order_and_completion_idempotent(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let chunk = 5 * MIB;
    let total = 2 * chunk + 7;
    let content: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
    let c = h
        .chunked(
            "u1",
            "org1",
            json!({ "filename": "data.bin", "totalSize": total, "chunkSize": chunk }),
        )
        .await;
    assert_eq!(c.data["totalChunks"], 3);
    let part = |i: usize| c.part(i, &content[i * chunk..((i + 1) * chunk).min(total)]);
    let stored_key = h.files.path().join("blobs/files/org1").join(&c.file_id);

    // The last part, then the first; the middle one is cut off half-way.
    let mut etags = std::collections::BTreeMap::new();
    for i in [2, 0] {
        let r = h.call(part(i)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        etags.insert(i, r.json()["data"]["eTag"].clone());
    }
    let mut cut = part(1);
    cut.cut_after = Some(MIB);
    h.call(cut).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!stored_key.exists(), "no file is visible before completion");
    assert_eq!(h.file_record(&c.file_id).await["status"], "pending");
    let hidden = h.call(url_of("u1", "org1", &c.file_id)).await;
    assert_eq!(
        (hidden.status, hidden.code()),
        (404, "FILE_NOT_FOUND".into())
    );

    // A part missing: 400 with the official code, naming it; the session stays resumable.
    let early = h.call(c.complete(Value::Null)).await;
    assert_eq!(
        (early.status, early.code()),
        (400, "INVALID_REQUEST".into()),
        "{}",
        early.text()
    );
    assert!(early.text().contains("[1]"), "{}", early.text());
    let p = h.call(c.progress()).await.json()["data"].clone();
    assert_eq!(p["status"], "in_progress");
    assert_eq!(p["uploadedChunkIndexes"], json!([0, 2]));
    assert!(!stored_key.exists());

    // The missing part; a completion naming a wrong eTag is refused like a missing part.
    let r = h.call(part(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"]["bytesReceived"], total);
    let wrong = h
        .call(c.complete(json!([{ "chunkIndex": 0, "eTag": etags[&2] }])))
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (400, "INVALID_REQUEST".into()),
        "{}",
        wrong.text()
    );

    // Then completion: the bytes in order whatever order they came in.
    let done = h.call(c.complete(Value::Null)).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let info = done.json()["data"].clone();
    assert_eq!(
        (info["fileId"].as_str(), info["size"].as_u64()),
        (Some(c.file_id.as_str()), Some(total as u64))
    );
    // Completing again answers the same file; the session reports `completed`.
    let again = h.call(c.complete(Value::Null)).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["data"], info);
    assert_eq!(
        h.call(c.progress()).await.json()["data"]["status"],
        "completed"
    );
    // A part after completion is refused and does not touch the file.
    let late = h.call(part(0)).await;
    assert_eq!((late.status, late.code()), (409, "INVALID_STATE".into()));

    let body = h.download("u1", "org1", &c.file_id).await;
    assert!(body.body == content, "the file differs from what was sent");
    assert_eq!(
        h.file_record(&c.file_id).await["checksum"],
        hex::encode(Sha256::digest(&content))
    );
    // A part's eTag is the CRC-64/NVME of its bytes (16 hex digits): the file's SHA-256 above
    // is the only SHA-256 an upload costs.
    for (i, etag) in &etags {
        let bytes = &content[i * chunk..((i + 1) * chunk).min(total)];
        assert_eq!(
            *etag,
            json!(format!("{:016x}", crc_fast::crc64_nvme(bytes)))
        );
    }
    let leftovers = h
        .files
        .path()
        .join("blobs/.tmp/assembly")
        .read_dir()
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);
    h.finish().await;
}
on_both!(
    chunked_parts_out_of_order_and_completion_idempotent_sqlite,
    chunked_parts_out_of_order_and_completion_idempotent_postgres,
    chunked_parts_out_of_order_and_completion_idempotent
);
