//! Test harness on the shared test kernel (`objectos_testkit::TestKernel`: data and HTTP on
//! the test's database, its session hoop reading `x-test-user`, `-admin` and `-org`), with the
//! storage plugin and a test plugin registering a test `Authorizer` under `permissions`; and
//! thin request and answer types over the testkit's HTTP client (binary bodies, a connection
//! dropped half-way).
//!
//! The real permissions plugin is paired with storage in the server's tests
//! (`apps/objectos-server/tests/it/files.rs`): plugins never depend on each other, not even in
//! tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use objectos_data::{DataEngine, OpContext};
use objectos_kernel::contracts::{Access, Authorizer, Caller, FieldAccess};
use objectos_kernel::{InitContext, Plugin, PluginError};
use objectos_spec::PluginManifest;
use objectos_spec::manifest::services;
use objectos_spec::query::{Filter, FilterValue, Operator};
use objectos_storage::{StoragePlugin, StorageService, StorageSettings};
use objectos_testkit::{TestDatabase, TestKernel};
use serde_json::{Value, json};
use tempfile::TempDir;

pub(crate) const ACCOUNT_YML: &str = "\
name: account
label: Account
fields:
  name:
    type: text
    label: Name
  contract:
    type: file
    label: Contract
    fileAttachmentConfig:
      allowedMimeTypes: [application/pdf]
  logo:
    type: image
    label: Logo
  attachments:
    type: file
    label: Attachments
    multiple: true
  photo:
    type: avatar
    label: Photo
  intro:
    type: video
    label: Intro
  greeting:
    type: audio
    label: Greeting
";

pub(crate) const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n";
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
/// The start of an MP4 (`ftyp` box) and of an MP3 (ID3 tag): enough for the sniffer.
pub(crate) const MP4: &[u8] = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom\0\0\0\x08free";
pub(crate) const MP3: &[u8] = b"ID3\x04\0\0\0\0\0\x0fTIT2\0\0\0\x05\0\0\0hi!\xff\xfb\x90\x44";

/// A PDF of `len` bytes: [`PDF`], then `fill` (large enough for chunked uploads).
pub(crate) fn padded_pdf(len: usize, fill: u8) -> Vec<u8> {
    let mut content = PDF.to_vec();
    content.resize(len, fill);
    content
}

/// An authorizer whose refusals the test sets: records nobody may read, and fields hidden
/// from one user.
#[derive(Debug, Default)]
pub(crate) struct TestAuthz {
    pub(crate) hidden_records: Mutex<HashSet<String>>,
    /// `(user, object, field)`.
    pub(crate) hidden_fields: Mutex<HashSet<(String, String, String)>>,
    pub(crate) engine: Mutex<Option<DataEngine>>,
}

#[async_trait]
impl Authorizer for TestAuthz {
    async fn allowed(
        &self,
        _caller: &Caller,
        _access: Access,
        _object: &str,
        record: Option<&str>,
    ) -> Result<bool, PluginError> {
        Ok(!record.is_some_and(|r| self.hidden_records.lock().unwrap().contains(r)))
    }

    /// The hidden records, as `allowed` answers for each: the contract says both agree.
    fn row_filter(
        &self,
        _caller: &Caller,
        _access: Access,
        _object: &str,
    ) -> Result<Option<Filter>, PluginError> {
        let hidden: Vec<Value> = self
            .hidden_records
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Value::String)
            .collect();
        Ok(Some(if hidden.is_empty() {
            Filter::True
        } else {
            Filter::condition(
                "id",
                Operator::Nin,
                FilterValue::Value(Value::Array(hidden)),
            )
        }))
    }

    fn field_access(&self, caller: &Caller, object: &str) -> Result<FieldAccess, PluginError> {
        let user = caller.principal.user_id().unwrap_or_default().to_owned();
        let hidden = self.hidden_fields.lock().unwrap();
        let fields: Vec<String> = [
            "id",
            "name",
            "contract",
            "logo",
            "attachments",
            "photo",
            "intro",
            "greeting",
        ]
        .into_iter()
        .filter(|f| !hidden.contains(&(user.clone(), object.to_owned(), (*f).to_owned())))
        .map(str::to_owned)
        .collect();
        Ok(FieldAccess {
            readable: fields.clone(),
            editable: fields,
        })
    }
}

const TEST_MANIFEST: PluginManifest = PluginManifest {
    provides: &[services::PERMISSIONS],
    ..PluginManifest::new("com.example.storagetest", "Storage test", "0.1.0")
};

struct TestPlugin(Arc<TestAuthz>);

#[async_trait]
impl Plugin for TestPlugin {
    fn manifest(&self) -> &PluginManifest {
        &TEST_MANIFEST
    }
    fn init(&self, cx: &mut InitContext<'_>) -> Result<(), PluginError> {
        cx.register::<dyn Authorizer>(services::PERMISSIONS, self.0.clone())?;
        Ok(())
    }
}

pub(crate) struct Harness {
    pub(crate) kernel: Arc<objectos_kernel::Kernel>,
    pub(crate) engine: DataEngine,
    pub(crate) service: Arc<StorageService>,
    pub(crate) authz: Arc<TestAuthz>,
    pub(crate) files: TempDir,
    tk: TestKernel,
}

/// Settings for tests: a short URL lifetime only where a test asks for it.
pub(crate) fn settings(files: &TempDir) -> StorageSettings {
    let mut s = StorageSettings::default();
    s.local.root = Some(files.path().to_path_buf());
    s.signing_key = Some(objectos_spec::settings::Secret::new(
        "test-signing-key-0123456789abcdef0123456789",
    ));
    s
}

impl Harness {
    pub(crate) async fn boot(db: TestDatabase, tweak: impl FnOnce(&mut StorageSettings)) -> Self {
        let files = tempfile::tempdir().unwrap();
        let mut storage_settings = settings(&files);
        storage_settings.local.root = Some(files.path().join("blobs"));
        tweak(&mut storage_settings);
        let storage = StoragePlugin::new(storage_settings);
        let cell = storage.service_cell();
        let authz = Arc::new(TestAuthz::default());
        let tk = TestKernel::builder()
            .database(db)
            .file("account.object.yml", ACCOUNT_YML)
            .plugin(TestPlugin(authz.clone()))
            .plugin(storage)
            .boot()
            .await;
        *authz.engine.lock().unwrap() = Some(tk.engine.clone());
        Self {
            kernel: tk.kernel.clone(),
            engine: tk.engine.clone(),
            service: cell.get().unwrap().clone(),
            authz,
            files,
            tk,
        }
    }

    pub(crate) async fn finish(self) {
        let Self {
            kernel,
            engine,
            service,
            authz,
            tk,
            ..
        } = self;
        *authz.engine.lock().unwrap() = None;
        drop((kernel, engine, service));
        tk.stop().await;
    }

    /// Creates an `account` in `org` as the system, with `data`.
    pub(crate) async fn account(&self, org: &str, data: Value) -> String {
        let rec = self
            .engine
            .create(
                &OpContext::system("test").with_tenant(org),
                "account",
                data.as_object().unwrap().clone(),
            )
            .await
            .unwrap();
        rec["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn call(&self, req: Req) -> Resp {
        let req = objectos_testkit::Request {
            method: req.method.to_owned(),
            path: req.path,
            headers: req.headers,
            body: req.body,
            cut_after: req.cut_after,
        };
        let r = self.tk.send(req).await;
        Resp {
            status: r.status,
            // Tests look headers up by name; a repeated one keeps its last value.
            headers: r.headers.into_iter().collect(),
            body: r.body,
        }
    }

    /// Uploads `content` as `user` in `org` and answers the new file's id.
    pub(crate) async fn upload_id(
        &self,
        user: &str,
        org: &str,
        name: &str,
        content: &[u8],
    ) -> String {
        let done = self.upload(user, org, name, content).await;
        assert_eq!(done.status, 200, "{}", done.text());
        done.json()["data"]["fileId"].as_str().unwrap().to_owned()
    }

    /// `POST /upload/presigned` with `body` as `user` in `org`, which must succeed: its `data`.
    pub(crate) async fn presign(&self, user: &str, org: &str, body: Value) -> Value {
        let r = self
            .call(Req::post("/api/v1/storage/upload/presigned", body).user(user, org))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].clone()
    }

    /// A presigned upload of `content` for `account.<field>`: the raw `PUT`'s answer.
    pub(crate) async fn put_for_field(
        &self,
        user: &str,
        org: &str,
        field: &str,
        content: &[u8],
    ) -> Resp {
        let data = self
            .presign(
                user,
                org,
                json!({ "filename": "f.bin", "object": "account", "field": field }),
            )
            .await;
        let url = data["uploadUrl"].as_str().unwrap();
        self.call(Req::put(url, content.to_vec())).await
    }

    /// `POST /upload/chunked` with `body` as `user` in `org`, which must succeed.
    pub(crate) async fn chunked(&self, user: &str, org: &str, body: Value) -> Chunked {
        let r = self
            .call(Req::post("/api/v1/storage/upload/chunked", body).user(user, org))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let data = r.json()["data"].clone();
        let field = |k: &str| data[k].as_str().unwrap().to_owned();
        Chunked {
            upload: field("uploadId"),
            token: field("resumeToken"),
            file_id: field("fileId"),
            user: (user.to_owned(), org.to_owned()),
            data,
        }
    }

    /// `file`'s contents as `user` in `org` reads them: the signed URL (which must be
    /// granted), then the raw `GET`'s answer.
    pub(crate) async fn download(&self, user: &str, org: &str, file: &str) -> Resp {
        let url = self.call(url_of(user, org, file)).await;
        assert_eq!(url.status, 200, "{}", url.text());
        let signed = url.json()["data"]["url"].as_str().unwrap().to_owned();
        self.call(Req::get(&signed)).await
    }

    /// The `sys_file` record of `file`, read as the system.
    pub(crate) async fn file_record(&self, file: &str) -> objectos_data::Record {
        self.engine
            .get(
                &OpContext::system("t"),
                "sys_file",
                file,
                Default::default(),
            )
            .await
            .unwrap()
    }

    /// The three steps of the client's `storage.upload`, as `user` in `org`; the `complete`
    /// answer.
    pub(crate) async fn upload(&self, user: &str, org: &str, name: &str, content: &[u8]) -> Resp {
        let presigned = self
            .call(
                Req::post(
                    "/api/v1/storage/upload/presigned",
                    json!({
                    "filename": name, "mimeType": "application/octet-stream",
                    "size": content.len(), "scope": "user" }),
                )
                .user(user, org),
            )
            .await;
        assert_eq!(presigned.status, 200, "{}", presigned.text());
        let data = &presigned.json()["data"];
        let put = self
            .call(Req::put(
                data["uploadUrl"].as_str().unwrap(),
                content.to_vec(),
            ))
            .await;
        assert_eq!(put.status, 200, "{}", put.text());
        self.call(complete_of(user, org, &data["fileId"])).await
    }
}

/// `GET /files/:id/url` as `user` in `org`.
pub(crate) fn url_of(user: &str, org: &str, file: &str) -> Req {
    Req::get(&format!("/api/v1/storage/files/{file}/url")).user(user, org)
}

/// `POST /upload/complete` of presigned upload `file` (a string value) as `user` in `org`.
pub(crate) fn complete_of(user: &str, org: &str, file: &Value) -> Req {
    Req::post("/api/v1/storage/upload/complete", json!({ "fileId": file })).user(user, org)
}

/// The requests of one chunked upload session (see [`Harness::chunked`]).
pub(crate) struct Chunked {
    pub(crate) upload: String,
    pub(crate) token: String,
    pub(crate) file_id: String,
    /// The init answer's `data`.
    pub(crate) data: Value,
    user: (String, String),
}

impl Chunked {
    fn path(&self, tail: &str) -> String {
        format!("/api/v1/storage/upload/chunked/{}/{tail}", self.upload)
    }

    /// Part `index` with `bytes` and the session's resume token.
    pub(crate) fn part(&self, index: usize, bytes: &[u8]) -> Req {
        Req::put(&self.path(&format!("chunk/{index}")), bytes.to_vec())
            .header("x-resume-token", &self.token)
            .user(&self.user.0, &self.user.1)
    }

    /// `POST …/complete` naming `parts` (`null` names none).
    pub(crate) fn complete(&self, parts: Value) -> Req {
        let body = if parts.is_null() {
            json!({})
        } else {
            json!({ "parts": parts })
        };
        Req::post(&self.path("complete"), body).user(&self.user.0, &self.user.1)
    }

    pub(crate) fn progress(&self) -> Req {
        Req::get(&self.path("progress")).user(&self.user.0, &self.user.1)
    }
}

/// A request for [`send`].
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Send the headers announcing the full body, then only this many bytes, then close.
    pub(crate) cut_after: Option<usize>,
}

impl Req {
    pub(crate) fn get(path: &str) -> Self {
        Self {
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
        }
    }
    pub(crate) fn post(path: &str, body: Value) -> Self {
        Self {
            method: "POST",
            body: body.to_string().into_bytes(),
            ..Self::get(path)
        }
        .header("content-type", "application/json")
    }
    pub(crate) fn put(path: &str, body: Vec<u8>) -> Self {
        Self {
            method: "PUT",
            body,
            ..Self::get(path)
        }
        .header("content-type", "application/octet-stream")
    }
    pub(crate) fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub(crate) fn user(self, user: &str, org: &str) -> Self {
        self.header("x-test-user", user).header("x-test-org", org)
    }
}

#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
