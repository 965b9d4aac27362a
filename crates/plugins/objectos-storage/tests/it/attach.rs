//! Writing a file id into a record is checked (the storage plugin's interceptor): a user may
//! attach only a file they may read already, of a type the field accepts, through every write
//! path (create, update, single and `multiple` fields); a refusal writes nothing. And a file
//! attached through a `multiple` field is read through it like through a single one.

use objectos_data::{OpContext, Principal};
use objectos_testkit::TestDatabase;
use serde_json::{Value, json};

use crate::on_both;
use crate::support::{Harness, MP3, MP4, PDF, PNG, Req, Resp, url_of};

fn create(user: &str, org: &str, body: Value) -> Req {
    Req::post("/api/v1/data/account", body).user(user, org)
}

fn update(user: &str, org: &str, id: &str, body: Value) -> Req {
    Req {
        method: "PATCH",
        ..Req::post(&format!("/api/v1/data/account/{id}"), body)
    }
    .user(user, org)
}

/// Creates an `account` as `user` in `org` through the data API: the answer.
async fn create_as(h: &Harness, user: &str, org: &str, body: Value) -> Resp {
    h.call(create(user, org, body)).await
}

/// The id of the record a create answered, which must have succeeded.
fn created(r: &Resp) -> String {
    assert!(r.status < 300, "{}", r.text());
    let body = r.json();
    body["id"]
        .as_str()
        .or(body["data"]["id"].as_str())
        .unwrap()
        .to_owned()
}

/// A refusal of a file the writer may not read: 400, naming the field, never the file.
fn assert_not_attachable(r: &Resp, field: &str, file: &str) {
    let body = r.json();
    assert_eq!(
        (r.status, body["code"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{}",
        r.text()
    );
    assert_eq!(body["fields"][0]["field"], field, "{}", r.text());
    assert_eq!(body["fields"][0]["code"], "invalid_reference");
    assert!(
        body["message"].as_str().unwrap().contains(field),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains(file),
        "the id is not repeated: {}",
        r.text()
    );
}

async fn account_count(h: &Harness, org: &str) -> u64 {
    h.engine
        .count(
            &OpContext::system("t").with_tenant(org),
            "account",
            objectos_spec::query::Filter::True,
        )
        .await
        .unwrap()
}

async fn attaching_needs_read_access(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let mine = h.upload_id("u1", "org1", "mine.pdf", PDF).await;
    let theirs = h.upload_id("u2", "org1", "theirs.pdf", PDF).await;

    // Another member's private (unattached) file: refused, and nothing is written.
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "contract": theirs })).await;
    assert_not_attachable(&r, "contract", &theirs);
    assert_eq!(account_count(&h, "org1").await, 0);
    // Still only its owner reads it.
    assert_eq!(h.call(url_of("u1", "org1", &theirs)).await.status, 404);

    // An id that names no file, and one of a file still being uploaded: the same answer.
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "A", "contract": "0000000000000000zzzz" }),
    )
    .await;
    assert_not_attachable(&r, "contract", "0000000000000000zzzz");
    let pending = h
        .presign(
            "u1",
            "org1",
            json!({ "filename": "p.pdf", "size": PDF.len() }),
        )
        .await["fileId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "A", "contract": pending }),
    )
    .await;
    assert_not_attachable(&r, "contract", &pending);

    // The writer's own upload: accepted, and then readable through the record by others.
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "contract": mine })).await;
    let account = created(&r);
    assert_eq!(h.call(url_of("u3", "org1", &mine)).await.status, 200);

    // A file attached to a record the writer reads may be attached elsewhere too.
    let r = create_as(&h, "u3", "org1", json!({ "name": "B", "contract": mine })).await;
    // Not once that record is hidden from the writer (the second account still holds it, so
    // hide both).
    let second = created(&r);
    {
        let mut hidden = h.authz.hidden_records.lock().unwrap();
        hidden.insert(account.clone());
        hidden.insert(second.clone());
    }
    let r = create_as(&h, "u3", "org1", json!({ "name": "C", "contract": mine })).await;
    assert_not_attachable(&r, "contract", &mine);
    h.authz.hidden_records.lock().unwrap().clear();

    // Updates are checked the same way, and a refused update leaves the record as it was.
    let r = h
        .call(update(
            "u1",
            "org1",
            &account,
            json!({ "name": "renamed", "contract": theirs }),
        ))
        .await;
    assert_not_attachable(&r, "contract", &theirs);
    let rec = h
        .engine
        .get(
            &OpContext::system("t").with_tenant("org1"),
            "account",
            &account,
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (rec["name"].as_str(), rec["contract"].as_str()),
        (Some("A"), Some(mine.as_str()))
    );

    // A file the record already holds is not checked again: echoing the record back works for
    // a user who could not attach it.
    let r = h
        .call(update(
            "u2",
            "org1",
            &account,
            json!({ "name": "B2", "contract": mine }),
        ))
        .await;
    assert!(r.status < 300, "{}", r.text());

    // Another organization's file, even the caller's own upload there.
    let elsewhere = h.upload_id("u1", "org2", "other-org.pdf", PDF).await;
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "X", "contract": elsewhere }),
    )
    .await;
    assert_not_attachable(&r, "contract", &elsewhere);

    // An administrator of the organization attaches any of its files; the system is trusted.
    let r = h
        .call(
            create("boss", "org1", json!({ "name": "Adm", "contract": theirs }))
                .header("x-test-admin", "1"),
        )
        .await;
    assert!(r.status < 300, "{}", r.text());
    // Links are not file ids: a logo URL is kept as it is.
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "L", "logo": "https://example.com/logo.png" }),
    )
    .await;
    assert!(r.status < 300, "{}", r.text());
    h.finish().await;
}
on_both!(
    attaching_needs_read_access_sqlite,
    attaching_needs_read_access_postgres,
    attaching_needs_read_access
);

async fn attached_files_must_have_an_allowed_type(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let png = h.upload_id("u1", "org1", "logo.png", PNG).await;
    let text = h
        .upload_id("u1", "org1", "notes.txt", b"just some words")
        .await;
    // `contract` accepts application/pdf only.
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "contract": png })).await;
    let body = r.json();
    assert_eq!(
        (r.status, body["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{}",
        r.text()
    );
    assert_eq!(body["fields"][0]["field"], "contract");
    assert_eq!(body["fields"][0]["code"], "unsupported_media_type");
    assert!(
        body["message"].as_str().unwrap().contains("image/png"),
        "{}",
        r.text()
    );
    assert!(
        body["message"].as_str().unwrap().contains("contract"),
        "{}",
        r.text()
    );
    // An image field takes images only, by default.
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "logo": text })).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        "{}",
        r.text()
    );
    assert_eq!(account_count(&h, "org1").await, 0);
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "logo": png })).await;
    assert!(r.status < 300, "{}", r.text());
    // A field without a list takes any type.
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "B", "attachments": [text] }),
    )
    .await;
    assert!(r.status < 300, "{}", r.text());
    h.finish().await;
}
on_both!(
    attached_files_must_have_an_allowed_type_sqlite,
    attached_files_must_have_an_allowed_type_postgres,
    attached_files_must_have_an_allowed_type
);

async fn multiple_file_fields(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let a = h.upload_id("u1", "org1", "a.pdf", PDF).await;
    let b = h.upload_id("u1", "org1", "b.png", PNG).await;
    let theirs = h.upload_id("u2", "org1", "theirs.pdf", PDF).await;

    // One unreadable element refuses the whole list, and the record is not written.
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "M", "attachments": [a, theirs] }),
    )
    .await;
    assert_not_attachable(&r, "attachments", &theirs);
    assert_eq!(account_count(&h, "org1").await, 0);

    let r = create_as(&h, "u1", "org1", json!({ "name": "M", "attachments": [a] })).await;
    let account = created(&r);
    // Adding to the list checks only the new element.
    let r = h
        .call(update(
            "u2",
            "org1",
            &account,
            json!({ "attachments": [a, b] }),
        ))
        .await;
    assert_not_attachable(&r, "attachments", &b);
    let r = h
        .call(update(
            "u1",
            "org1",
            &account,
            json!({ "attachments": [a, b] }),
        ))
        .await;
    assert!(r.status < 300, "{}", r.text());

    // Every element is read through the record: a member who reads the record and the field
    // downloads each, even though u1 uploaded them.
    for file in [&a, &b] {
        let ok = h.call(url_of("reader", "org1", file)).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let signed = ok.json()["data"]["url"].as_str().unwrap().to_owned();
        assert_eq!(h.call(Req::get(&signed)).await.status, 200);
    }
    // The field hidden from `reader`: refused.
    h.authz.hidden_fields.lock().unwrap().insert((
        "reader".into(),
        "account".into(),
        "attachments".into(),
    ));
    let r = h.call(url_of("reader", "org1", &a)).await;
    assert_eq!((r.status, r.code()), (404, "FILE_NOT_FOUND".into()));
    assert_eq!(h.call(url_of("other", "org1", &a)).await.status, 200);
    // The record hidden (the test authorizer hides it from everyone): nobody reads them, the
    // uploader included, since a record holds them.
    h.authz
        .hidden_records
        .lock()
        .unwrap()
        .insert(account.clone());
    for user in ["other", "u1"] {
        let r = h.call(url_of(user, "org1", &b)).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "FILE_NOT_FOUND".into()),
            "{user}"
        );
    }
    // Another organization never reads them.
    assert_eq!(h.call(url_of("reader", "org2", &a)).await.status, 404);

    // The engine refuses a user's write directly too, not only over HTTP.
    let mut cx = OpContext::system("t").with_tenant("org1");
    cx.principal = Principal::user("u1");
    let err = h
        .engine
        .create(
            &cx,
            "account",
            json!({ "name": "E", "attachments": [theirs] })
                .as_object()
                .unwrap()
                .clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED");
    // System writes are trusted (seeds, plugins): not checked; the file is then
    // read through that record like any other.
    h.engine
        .create(
            &OpContext::system("seed").with_tenant("org1"),
            "account",
            json!({ "name": "S", "attachments": [theirs] })
                .as_object()
                .unwrap()
                .clone(),
        )
        .await
        .unwrap();
    assert_eq!(h.call(url_of("u1", "org1", &theirs)).await.status, 200);
    h.finish().await;
}
on_both!(
    multiple_file_fields_sqlite,
    multiple_file_fields_postgres,
    multiple_file_fields
);

/// `avatar`, `video` and `audio` fields hold files like `file` and `image` do: the write guard
/// checks them, each takes its own MIME family by default (on attach and on an upload that names
/// the field), and downloads follow the record and the field.
async fn avatar_video_and_audio_fields_hold_files(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let png = h.upload_id("u1", "org1", "me.png", PNG).await;
    let mp4 = h.upload_id("u1", "org1", "intro.mp4", MP4).await;
    let mp3 = h.upload_id("u1", "org1", "hello.mp3", MP3).await;
    let theirs = h.upload_id("u2", "org1", "theirs.png", PNG).await;

    // Each field refuses the other families with 415, and nothing is written.
    for (field, wrong, mime) in [
        ("photo", &mp4, "video/mp4"),
        ("intro", &png, "image/png"),
        ("greeting", &png, "image/png"),
        ("photo", &mp3, "audio/mpeg"),
    ] {
        let r = create_as(&h, "u1", "org1", json!({ "name": "A", field: wrong })).await;
        let body = r.json();
        assert_eq!(
            (r.status, body["code"].as_str()),
            (415, Some("UNSUPPORTED_MEDIA_TYPE")),
            "{field}: {}",
            r.text()
        );
        assert_eq!(body["fields"][0]["field"], field);
        assert!(
            body["message"].as_str().unwrap().contains(mime),
            "{}",
            r.text()
        );
    }
    assert_eq!(account_count(&h, "org1").await, 0);

    // Another member's private upload is not attachable to an avatar either.
    let r = create_as(&h, "u1", "org1", json!({ "name": "A", "photo": theirs })).await;
    assert_not_attachable(&r, "photo", &theirs);

    // The right families are accepted.
    let r = create_as(
        &h,
        "u1",
        "org1",
        json!({ "name": "A", "photo": png, "intro": mp4, "greeting": mp3 }),
    )
    .await;
    let account = created(&r);

    // Read through the record: another member downloads each file, the bytes intact.
    for (file, content) in [(&png, PNG), (&mp4, MP4), (&mp3, MP3)] {
        let ok = h.call(url_of("reader", "org1", file)).await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let signed = ok.json()["data"]["url"].as_str().unwrap().to_owned();
        assert_eq!(h.call(Req::get(&signed)).await.body, content);
    }
    // A hidden field hides its file only; a hidden record hides them all.
    h.authz.hidden_fields.lock().unwrap().insert((
        "reader".into(),
        "account".into(),
        "intro".into(),
    ));
    let r = h.call(url_of("reader", "org1", &mp4)).await;
    assert_eq!((r.status, r.code()), (404, "FILE_NOT_FOUND".into()));
    assert_eq!(h.call(url_of("reader", "org1", &mp3)).await.status, 200);
    h.authz.hidden_records.lock().unwrap().insert(account);
    for file in [&png, &mp3] {
        let r = h.call(url_of("reader", "org1", file)).await;
        assert_eq!((r.status, r.code()), (404, "FILE_NOT_FOUND".into()));
    }

    // An upload naming the field is checked against its family before the file is kept.
    for (field, content, status) in [
        ("photo", PDF, 415),
        ("photo", PNG, 200),
        ("intro", MP3, 415),
        ("intro", MP4, 200),
        ("greeting", MP4, 415),
        ("greeting", MP3, 200),
    ] {
        let put = h.put_for_field("u1", "org1", field, content).await;
        assert_eq!(put.status, status, "{field}: {}", put.text());
    }
    h.finish().await;
}
on_both!(
    avatar_video_and_audio_fields_hold_files_sqlite,
    avatar_video_and_audio_fields_hold_files_postgres,
    avatar_video_and_audio_fields_hold_files
);
