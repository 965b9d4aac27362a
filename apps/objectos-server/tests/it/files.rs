//! Files under the real permissions plugin (not a test `Authorizer`): the storage and
//! permissions plugins in one test kernel, with CRM-like permission sets, a row-level security
//! rule and a field hidden by field-level security. A user who cannot read the record, or the
//! field, that holds a file cannot download it even with its id; signed URLs expire and are
//! bound to one file and one operation.
//!
//! This lives in the server's tests because only the server may link two plugins (plugins never
//! depend on each other, not even in tests: `cargo xtask deps`).

// Helpers outside `#[test]` functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use objectos_permissions::{AuthzConfig, PermissionsPlugin};
use objectos_storage::StoragePlugin;
use objectos_testkit::{Client, Request, Response, TestDatabase, TestKernel, Who};
use serde_json::{Value, json};

const OBJECTS: &[(&str, &str)] = &[
    (
        "account.object.yml",
        "\
name: account
label: Account
fields:
  name: { type: text, label: Name }
  contract: { type: file, label: Contract }
  bank_details: { type: file, label: Bank details }
  logo: { type: avatar, label: Logo }
",
    ),
    (
        "opportunity.object.yml",
        "\
name: opportunity
label: Opportunity
fields:
  name: { type: text, label: Name }
  proposal: { type: file, label: Proposal }
",
    ),
    // As in presets/crm: reps read and edit accounts and their own opportunities only, and
    // never see the account's bank details.
    (
        "sales_rep.permission.yml",
        "\
name: sales_rep
objects:
  account: { allowRead: true, allowCreate: true, allowEdit: true }
  opportunity: { allowRead: true, allowCreate: true, allowEdit: true }
fields:
  account.bank_details: { readable: false, editable: false }
rowLevelSecurity:
  - name: own_opportunities
    object: opportunity
    operation: all
    using: \"owner_id = current_user.id\"
    check: \"owner_id = current_user.id\"
",
    ),
    (
        "manager.permission.yml",
        "\
name: manager
objects:
  account: { allowRead: true, allowCreate: true, allowEdit: true, viewAllRecords: true }
  opportunity: { allowRead: true, allowCreate: true, allowEdit: true, viewAllRecords: true }
",
    ),
];

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n";

/// The URL lifetime: short, so expiry is tested without a long wait.
const TTL_SECONDS: u64 = 3;

async fn boot(db: TestDatabase, files: &std::path::Path) -> TestKernel {
    TestKernel::builder()
        .database(db)
        .files(OBJECTS)
        .plugin(PermissionsPlugin::new(AuthzConfig::default()))
        .plugin(StoragePlugin::default())
        .config(
            objectos_storage::PLUGIN_ID,
            json!({
                "local": { "root": files },
                "signingKey": "test-signing-key-0123456789abcdef0123456789",
                "urlTtlSeconds": TTL_SECONDS,
            }),
        )
        .boot()
        .await
}

fn who(id: &str, set: &str) -> Who {
    Who::user(id).sets(&[set]).tenant("org1")
}

/// The client's `storage.upload`: presigned URL, raw PUT, complete; the new file's id.
async fn upload(client: &Client, name: &str) -> String {
    let presigned = client
        .post(
            "/api/v1/storage/upload/presigned",
            &json!({ "filename": name, "size": PDF.len() }),
        )
        .await
        .ok_json();
    let put = client
        .put(
            presigned["data"]["uploadUrl"].as_str().unwrap(),
            PDF.to_vec(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let done = client
        .post(
            "/api/v1/storage/upload/complete",
            &json!({ "fileId": presigned["data"]["fileId"] }),
        )
        .await
        .ok_json();
    done["data"]["fileId"].as_str().unwrap().to_owned()
}

/// Creates a record over the REST API; its id.
async fn create(client: &Client, object: &str, body: Value) -> String {
    let r = client.post(&format!("/api/v1/data/{object}"), &body).await;
    assert!(r.status < 300, "{}", r.text());
    let b = r.json();
    [&b["record"]["id"], &b["data"]["id"], &b["id"]]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or_else(|| panic!("no id in {b}"))
        .to_owned()
}

/// The signed download URL `client` gets for `file`, or the refusal.
async fn url_of(client: &Client, file: &str) -> Response {
    client
        .get(&format!("/api/v1/storage/files/{file}/url"))
        .await
}

async fn signed(client: &Client, file: &str) -> String {
    url_of(client, file).await.ok_json()["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[track_caller]
fn assert_not_found(r: &Response, what: &str) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "FILE_NOT_FOUND"),
        "{what}: {}",
        r.text()
    );
}

async fn downloads_follow_the_permission_sets(db: TestDatabase) {
    let files = tempfile::tempdir().unwrap();
    let k = boot(db, files.path()).await;
    let rep1 = k.client(who("rep1", "sales_rep"));
    let rep2 = k.client(who("rep2", "sales_rep"));
    let manager = k.client(who("boss", "manager"));
    let outsider = k.client(Who::user("rep3").sets(&["sales_rep"]).tenant("org2"));

    // Row-level security: rep1's opportunity is invisible to rep2, and so is its proposal.
    let proposal = upload(&rep1, "proposal.pdf").await;
    let opportunity = create(
        &rep1,
        "opportunity",
        json!({ "name": "Big deal", "proposal": proposal }),
    )
    .await;
    assert_eq!(
        rep2.get(&format!("/api/v1/data/opportunity/{opportunity}"))
            .await
            .status,
        404,
        "the rule hides the record itself"
    );
    assert_not_found(&url_of(&rep2, &proposal).await, "rep2, hidden record");
    let redirect = rep2.get(&format!("/api/v1/storage/files/{proposal}")).await;
    assert_eq!(redirect.status, 404, "{}", redirect.text());
    // Nor may rep2 make it readable by writing its id into a record of their own.
    let r = rep2
        .post(
            "/api/v1/data/opportunity",
            &json!({ "name": "Mine", "proposal": proposal }),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "VALIDATION_FAILED"),
        "{}",
        r.text()
    );
    assert_not_found(
        &url_of(&rep2, &proposal).await,
        "rep2 after the refused write",
    );
    // The owner and a manager who sees every opportunity read it.
    let got = k.send(Request::get(&signed(&rep1, &proposal).await)).await;
    assert_eq!((got.status, got.body.as_slice()), (200, PDF));
    assert_eq!(url_of(&manager, &proposal).await.status, 200);
    // Another organization never does.
    assert_not_found(&url_of(&outsider, &proposal).await, "another organization");

    // Field-level security: the manager files a contract and the bank details on an account;
    // reps read the account and its contract, not the bank details.
    let contract = upload(&manager, "contract.pdf").await;
    let bank = upload(&manager, "bank.pdf").await;
    let account = create(
        &manager,
        "account",
        json!({ "name": "Acme", "contract": contract, "bank_details": bank }),
    )
    .await;
    let seen = rep1
        .get(&format!("/api/v1/data/account/{account}"))
        .await
        .ok_json();
    assert!(
        seen.to_string().contains(&contract) && !seen.to_string().contains(&bank),
        "the field is hidden in the record: {seen}"
    );
    assert_eq!(url_of(&rep1, &contract).await.status, 200);
    assert_not_found(&url_of(&rep1, &bank).await, "rep1, hidden field");
    assert_not_found(&url_of(&rep2, &bank).await, "rep2, hidden field");
    assert_eq!(url_of(&manager, &bank).await.status, 200);
    // A rep cannot write the hidden field either, not even with a file they may read.
    let mine = upload(&rep1, "mine.pdf").await;
    let r = rep1
        .patch(
            &format!("/api/v1/data/account/{account}"),
            &json!({ "bank_details": mine }),
        )
        .await;
    assert!(
        r.status >= 400,
        "a hidden field is not writable: {}",
        r.text()
    );
    assert_not_found(&url_of(&rep1, &bank).await, "rep1 after the refused write");

    // A signed URL is bound to its file and its operation: the payload of one token with the
    // signature of another, or an upload token used to download, is refused.
    let for_contract = signed(&rep1, &contract).await;
    let for_proposal = signed(&rep1, &proposal).await;
    let (contract_payload, _) = for_contract.rsplit_once('.').unwrap();
    let (_, proposal_mac) = for_proposal.rsplit_once('.').unwrap();
    let forged = k
        .send(Request::get(&format!("{contract_payload}.{proposal_mac}")))
        .await;
    assert_eq!(
        (forged.status, forged.code().as_str()),
        (403, "INVALID_TOKEN"),
        "{}",
        forged.text()
    );
    let pending = rep1
        .post(
            "/api/v1/storage/upload/presigned",
            &json!({ "filename": "later.pdf", "size": PDF.len() }),
        )
        .await
        .ok_json();
    let upload_url = pending["data"]["uploadUrl"].as_str().unwrap();
    let r = k.send(Request::get(upload_url)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "INVALID_TOKEN"),
        "{}",
        r.text()
    );

    // And it expires: the same URL works now and is refused once its lifetime has passed,
    // although the reader still may read the file.
    assert_eq!(k.send(Request::get(&for_contract)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(TTL_SECONDS * 1000 + 1100)).await;
    let late = k.send(Request::get(&for_contract)).await;
    assert_eq!(
        (late.status, late.code().as_str()),
        (403, "INVALID_TOKEN"),
        "{}",
        late.text()
    );
    assert_eq!(url_of(&rep1, &contract).await.status, 200);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_follow_the_permission_sets_sqlite() {
    downloads_follow_the_permission_sets(TestDatabase::sqlite_file()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_follow_the_permission_sets_postgres() {
    let Some(db) = TestDatabase::postgres("srvfiles").await else {
        eprintln!("PostgreSQL skipped: set OBJECTOS_TEST_POSTGRES_URL");
        return;
    };
    downloads_follow_the_permission_sets(db).await;
}
