//! Reading a file follows the records that reference it: a user who cannot read the record,
//! or the field, cannot download the file, even with its id.

use objectos_testkit::TestDatabase;
use serde_json::json;

use crate::on_both;
use crate::support::{Harness, PDF, Req};

async fn downloads_follow_record_and_field_access(db: TestDatabase) {
    let h = Harness::boot(db, |_| {}).await;
    let done = h.upload("owner", "org1", "contract.pdf", PDF).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let file_id = done.json()["data"]["fileId"].as_str().unwrap().to_owned();
    let url_of =
        |user: &str| Req::get(&format!("/api/v1/storage/files/{file_id}/url")).user(user, "org1");
    // Unattached: only its owner reads it.
    assert_eq!(h.call(url_of("reader")).await.status, 404);
    assert_eq!(h.call(url_of("owner")).await.status, 200);

    // Attached to an account: whoever reads the account and the field reads the file.
    let account = h
        .account("org1", json!({ "name": "Acme", "contract": file_id }))
        .await;
    let ok = h.call(url_of("reader")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let signed = ok.json()["data"]["url"].as_str().unwrap().to_owned();
    assert_eq!(h.call(Req::get(&signed)).await.body, PDF);

    // The field hidden from `reader` by field-level security: refused, for the owner too
    // once the record decides.
    h.authz.hidden_fields.lock().unwrap().insert((
        "reader".into(),
        "account".into(),
        "contract".into(),
    ));
    let hidden_field = h.call(url_of("reader")).await;
    assert_eq!(
        (hidden_field.status, hidden_field.code()),
        (404, "FILE_NOT_FOUND".into())
    );
    assert_eq!(h.call(url_of("owner")).await.status, 200);

    // The record hidden: nobody but an administrator reads the file, even with its id.
    h.authz
        .hidden_records
        .lock()
        .unwrap()
        .insert(account.clone());
    for user in ["reader", "owner"] {
        let r = h.call(url_of(user)).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "FILE_NOT_FOUND".into()),
            "{user}"
        );
        let redirect = h
            .call(Req::get(&format!("/api/v1/storage/files/{file_id}")).user(user, "org1"))
            .await;
        assert_eq!(redirect.status, 404, "{user}");
    }
    // Another organization never sees it, whatever its records say.
    h.account("org2", json!({ "name": "Other", "contract": file_id }))
        .await;
    assert_eq!(
        h.call(Req::get(&format!("/api/v1/storage/files/{file_id}/url")).user("reader", "org2"))
            .await
            .status,
        404
    );
    h.finish().await;
}
on_both!(
    downloads_follow_record_and_field_access_sqlite,
    downloads_follow_record_and_field_access_postgres,
    downloads_follow_record_and_field_access
);
