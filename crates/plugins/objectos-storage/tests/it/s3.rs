//! The S3 backend against a real S3-compatible server on loopback: `OBJECTOS_TEST_S3_URL`
//! (for example `moto_server -H 127.0.0.1 -p 5055` from PyPI's `moto[server]`, then
//! `OBJECTOS_TEST_S3_URL=http://127.0.0.1:5055`). Each test makes its own bucket.

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::StreamExt;
use objectos_kernel::contracts::{BlobStore, ByteStream};
use objectos_spec::settings::Secret;
use objectos_storage::config::{BackendKind, S3Settings};
use objectos_storage::s3::S3BlobStore;
use objectos_testkit::TestDatabase;

use crate::support::{Harness, PDF, Req, padded_pdf};

fn s3_url() -> Option<String> {
    std::env::var("OBJECTOS_TEST_S3_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Creates a bucket with a plain `PUT /<bucket>` (moto and MinIO in its default mode accept it
/// unsigned on loopback).
fn make_bucket(url: &str) -> String {
    let bucket = format!("objectos-{}", uuid::Uuid::new_v4().simple());
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    bucket
}

fn settings(url: &str, bucket: &str) -> S3Settings {
    S3Settings {
        bucket: bucket.to_owned(),
        endpoint: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        access_key_id: Some(Secret::new("test")),
        secret_access_key: Some(Secret::new("test")),
        path_style: true,
        allow_http: true,
        prefix: Some("objectos".into()),
    }
}

async fn collect(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_s3),
    ignore = "needs an S3 server: set OBJECTOS_TEST_S3_URL"
)]
async fn the_s3_store_streams_ranges_and_never_keeps_a_failed_upload() {
    let Some(url) = s3_url() else { return };
    let store = S3BlobStore::open(&settings(&url, &make_bucket(&url))).unwrap();
    // 23 MiB in 1 MiB chunks: three multipart parts.
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    let parts: Vec<Result<Bytes, std::io::Error>> = (0..23).map(|_| Ok(chunk.clone())).collect();
    let meta = store
        .put("files/_/big", Box::pin(futures_util::stream::iter(parts)))
        .await
        .unwrap();
    assert_eq!(meta.size, 23 * 1024 * 1024);
    let read = store
        .get("files/_/big", Some(10..20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.range, Some(10..20));
    assert_eq!(collect(read.body).await, vec![7u8; 10]);
    let all = store.get("files/_/big", None).await.unwrap().unwrap();
    assert_eq!(collect(all.body).await.len(), 23 * 1024 * 1024);
    assert_eq!(
        store.head("files/_/big").await.unwrap().unwrap().size,
        23 * 1024 * 1024
    );

    let failing: ByteStream = Box::pin(futures_util::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("connection dropped")),
    ]));
    assert!(store.put("files/_/broken", failing).await.is_err());
    assert!(store.head("files/_/broken").await.unwrap().is_none());
    assert!(store.get("files/_/broken", None).await.unwrap().is_none());

    store.delete("files/_/big").await.unwrap();
    store.delete("files/_/big").await.unwrap();
    assert!(store.head("files/_/big").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(objectos_s3),
    ignore = "needs an S3 server: set OBJECTOS_TEST_S3_URL"
)]
async fn the_client_flow_works_on_s3() {
    let Some(url) = s3_url() else { return };
    let bucket = make_bucket(&url);
    let h = Harness::boot(TestDatabase::sqlite_file(), |s| {
        s.backend = BackendKind::S3;
        s.s3 = settings(&url, &bucket);
    })
    .await;
    let done = h.upload("u1", "org1", "offer.pdf", PDF).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let id = done.json()["data"]["fileId"].as_str().unwrap().to_owned();
    let signed = h
        .call(Req::get(&format!("/api/v1/storage/files/{id}/url")).user("u1", "org1"))
        .await;
    let url = signed.json()["data"]["url"].as_str().unwrap().to_owned();
    let body = h.call(Req::get(&url)).await;
    assert_eq!(body.status, 200);
    assert_eq!(body.body, PDF);
    let part = h.call(Req::get(&url).header("range", "bytes=1-3")).await;
    assert_eq!((part.status, part.body.as_slice()), (206, &b"PDF"[..]));

    // A chunked upload, parts out of order: stored as objects, joined at completion (which
    // may be repeated), and the parts removed.
    let total = 5 * 1024 * 1024 + 11;
    let content = padded_pdf(total, b'q');
    let c = h
        .chunked(
            "u1",
            "org1",
            serde_json::json!({ "filename": "big.pdf", "totalSize": total }),
        )
        .await;
    for i in [1, 0] {
        let bytes = &content[i * 5 * 1024 * 1024..((i + 1) * 5 * 1024 * 1024).min(total)];
        let r = h.call(c.part(i, bytes)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for _ in 0..2 {
        let done = h.call(c.complete(serde_json::Value::Null)).await;
        assert_eq!(done.status, 200, "{}", done.text());
        assert_eq!(done.json()["data"]["mimeType"], "application/pdf");
    }
    assert!(h.download("u1", "org1", &c.file_id).await.body == content);
    let blobs = h.service.blobs().unwrap();
    let parts = format!("parts/{}/0", c.upload);
    assert!(blobs.head(&parts).await.unwrap().is_none());
    // Nothing was written to the local folder.
    assert!(!h.files.path().join("blobs/files").exists());
    h.finish().await;
}
