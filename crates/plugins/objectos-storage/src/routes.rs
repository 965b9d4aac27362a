//! HTTP routes under `/api/v1/storage`: the official client's `storage` namespace (presigned,
//! complete, chunked and resumable uploads, signed download URLs, the 302 download) and the
//! signed raw transfers at `/_local/raw/:token`.
//!
//! Envelopes as the official `service-storage` answers them: `{success: true, data}` and
//! `{success: false, error: {code, message}}`. The contribution is `streaming_body`: uploads
//! are read as streams past the server's JSON body limit, bounded here by `maxFileSize`, and
//! JSON bodies are capped at [`JSON_LIMIT`].

use std::sync::Arc;

use futures_util::TryStreamExt;
use objectos_data::Principal;
use objectos_http::{RequestContext, RouteContribution, RouteOperation};
use objectos_kernel::contracts::{ByteStream, Caller};
use objectos_spec::manifest::services;
use salvo::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    HeaderValue, LOCATION, RANGE,
};
use salvo::http::{Method, StatusCode};
use salvo::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::StorageError;
use crate::service::{ChunkedInit, PartRef, PresignRequest, StorageService};

/// Where the routes are mounted, relative to `/api/v1`.
pub const MOUNT: &str = "storage";

/// Largest JSON body of the storage routes.
pub const JSON_LIMIT: usize = 64 * 1024;

/// The contribution (service `file-storage`, advertised as the `storage` route).
pub fn contribution(service: Arc<StorageService>) -> RouteContribution {
    RouteContribution::new(MOUNT, move || router(service.clone()))
        .service(services::FILE_STORAGE)
        .operations(operations())
        .streaming_body()
}

fn router(service: Arc<StorageService>) -> Router {
    let s = || Shared(service.clone());
    Router::new()
        .push(Router::with_path("upload/presigned").post(Route {
            s: s(),
            kind: Kind::Presign,
        }))
        .push(Router::with_path("upload/complete").post(Route {
            s: s(),
            kind: Kind::Complete,
        }))
        .push(Router::with_path("upload/chunked").post(Route {
            s: s(),
            kind: Kind::ChunkedInit,
        }))
        .push(
            Router::with_path("upload/chunked/{upload_id}/chunk/{index}").put(Route {
                s: s(),
                kind: Kind::Chunk,
            }),
        )
        .push(
            Router::with_path("upload/chunked/{upload_id}/progress").get(Route {
                s: s(),
                kind: Kind::Progress,
            }),
        )
        .push(
            Router::with_path("upload/chunked/{upload_id}/complete").post(Route {
                s: s(),
                kind: Kind::ChunkedComplete,
            }),
        )
        .push(Router::with_path("files/{file_id}/url").get(Route {
            s: s(),
            kind: Kind::Url,
        }))
        .push(Router::with_path("files/{file_id}").get(Route {
            s: s(),
            kind: Kind::Redirect,
        }))
        .push(
            Router::with_path("_local/raw/{token}")
                .get(Route {
                    s: s(),
                    kind: Kind::RawGet,
                })
                .put(Route {
                    s: s(),
                    kind: Kind::RawPut,
                }),
        )
}

/// The wire envelope of an error, and the standard `{error, code, message}` the auth hoop
/// answers with before a request reaches these routes.
fn error_schema() -> Value {
    json!({ "anyOf": [
        { "type": "object", "required": ["success", "error"], "properties": {
            "success": { "const": false },
            "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" } } } } },
        { "$ref": "#/components/schemas/Error" }
    ] })
}

fn envelope(data: Value) -> Value {
    json!({ "type": "object", "required": ["success", "data"], "properties": {
        "success": { "const": true }, "data": data } })
}

/// The operations of [`router`], for the OpenAPI document.
pub fn operations() -> Vec<RouteOperation> {
    let s = json!({ "type": "string" });
    let n = json!({ "type": "integer", "minimum": 0 });
    let file = json!({ "type": "object", "properties": {
        "fileId": s, "path": s, "name": s, "size": n, "mimeType": s,
        "lastModified": s, "created": s, "etag": s } });
    let presign_body = json!({ "type": "object", "required": ["filename"], "properties": {
        "filename": { "type": "string", "minLength": 1 }, "mimeType": s, "size": n, "scope": s,
        "bucket": s, "object": s, "field": s, "metadata": { "type": "object" } } });
    let chunked_body = json!({ "type": "object", "required": ["filename", "totalSize"], "properties": {
        "filename": { "type": "string", "minLength": 1 }, "mimeType": s,
        "totalSize": { "type": "integer", "minimum": 1 }, "chunkSize": n, "scope": s,
        "bucket": s, "object": s, "field": s, "metadata": { "type": "object" } } });
    let progress = json!({ "type": "object", "properties": {
        "uploadId": s, "fileId": s, "filename": s, "totalSize": n, "uploadedSize": n,
        "totalChunks": n, "uploadedChunks": n, "percentComplete": { "type": "number" },
        "status": { "enum": ["in_progress", "completing", "completed", "failed", "expired"] },
        "startedAt": s, "expiresAt": s } });
    let ops = vec![
        RouteOperation::post("upload/presigned", "A pending file and a signed, expiring URL to PUT its contents to")
            .body(presign_body)
            .returns(envelope(json!({ "type": "object", "properties": {
                "uploadUrl": s, "method": { "const": "PUT" }, "headers": { "type": "object" },
                "fileId": s, "expiresIn": n, "downloadUrl": s } }))),
        RouteOperation::post("upload/complete", "Completes a presigned upload: the file becomes readable")
            .body(json!({ "type": "object", "required": ["fileId"], "properties": { "fileId": s } }))
            .returns(envelope(file)),
        RouteOperation::post("upload/chunked", "Starts a chunked, resumable upload")
            .body(chunked_body)
            .returns(envelope(json!({ "type": "object", "properties": {
                "uploadId": s, "resumeToken": s, "fileId": s, "totalChunks": n, "chunkSize": n,
                "expiresAt": s } }))),
        RouteOperation::new(Method::PUT, "upload/chunked/{upload_id}/chunk/{index}", "Uploads one chunk (binary body, header x-resume-token)")
            .returns(envelope(json!({ "type": "object", "properties": {
                "chunkIndex": n, "eTag": s, "bytesReceived": n } }))),
        RouteOperation::get("upload/chunked/{upload_id}/progress", "Progress of a chunked upload: what to resume")
            .returns(envelope(progress)),
        RouteOperation::post("upload/chunked/{upload_id}/complete", "Joins the chunks into the file")
            .body(json!({ "type": "object", "properties": { "parts": { "type": "array", "items": {
                "type": "object", "required": ["chunkIndex"], "properties": { "chunkIndex": n, "eTag": s } } } } }))
            .returns(envelope(json!({ "type": "object", "properties": {
                "fileId": s, "key": s, "size": n, "mimeType": s, "url": s } }))),
        RouteOperation::get("files/{file_id}/url", "A signed, expiring download URL (readers of a record that references the file)")
            .returns(envelope(json!({ "type": "object", "required": ["url"], "properties": { "url": s } }))),
        RouteOperation::get("files/{file_id}", "Redirects (302) to a signed download URL"),
        RouteOperation::get("_local/raw/{token}", "Downloads the contents a signed token names (Range supported)").public(),
        RouteOperation::new(Method::PUT, "_local/raw/{token}", "Uploads the contents of a presigned upload (binary body)")
            .public()
            .returns(envelope(json!({ "type": "object", "properties": { "key": s } }))),
    ];
    ops.into_iter().map(|o| o.errors(error_schema())).collect()
}

#[derive(Clone)]
struct Shared(Arc<StorageService>);

#[derive(Debug, Clone, Copy)]
enum Kind {
    Presign,
    Complete,
    ChunkedInit,
    Chunk,
    Progress,
    ChunkedComplete,
    Url,
    Redirect,
    RawGet,
    RawPut,
}

struct Route {
    s: Shared,
    kind: Kind,
}

fn fail(res: &mut Response, e: &StorageError) {
    if e.status().is_server_error() {
        tracing::warn!(plugin = crate::PLUGIN_ID, error = %e, "Storage request failed.");
    }
    res.status_code(e.status());
    res.render(Json(json!({
        "success": false,
        "error": { "code": e.code(), "message": e.to_string() },
    })));
}

fn ok(res: &mut Response, data: Value) {
    res.render(Json(json!({ "success": true, "data": data })));
}

fn caller(depot: &Depot) -> Caller {
    match depot.get_typed::<RequestContext>() {
        Ok(cx) => Caller::new(cx.principal.clone(), cx.tenant.clone()),
        Err(_) => Caller::new(Principal::Anonymous, None),
    }
}

async fn json_body<T: DeserializeOwned>(req: &mut Request) -> Result<T, StorageError> {
    let bytes = req
        .payload_with_max_size(JSON_LIMIT)
        .await
        .map_err(|e| StorageError::InvalidRequest(format!("the body could not be read: {e}")))?;
    if bytes.len() >= JSON_LIMIT {
        return Err(StorageError::TooLarge(format!(
            "the JSON body is larger than {JSON_LIMIT} bytes"
        )));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::InvalidRequest(format!("the body is not valid: {e}")))
}

fn param(req: &Request, name: &str) -> String {
    req.param::<String>(name).unwrap_or_default()
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn body_stream(req: &mut Request) -> ByteStream {
    let body = req.take_body();
    Box::pin(http_body_util::BodyDataStream::new(body).map_err(std::io::Error::other))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range; several are served whole).
fn parse_range(header: &str, size: Option<u64>) -> Option<Option<std::ops::Range<u64>>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return Some(None);
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        let size = size?;
        return Some(Some(size.saturating_sub(n)..size));
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        u64::MAX
    } else {
        b.parse::<u64>().ok()?.checked_add(1)?
    };
    (start < end).then_some(Some(start..end))
}

/// `filename*=UTF-8''…` (RFC 5987) plus an ASCII fallback.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

impl Route {
    async fn raw_get(&self, req: &mut Request, res: &mut Response) -> Result<(), StorageError> {
        let token = param(req, "token");
        let service = &self.s.0;
        let range = match req.headers().get(RANGE).and_then(|v| v.to_str().ok()) {
            None => None,
            Some(h) => {
                let size = if h.contains("=-") {
                    service.raw_size(&token).await
                } else {
                    None
                };
                match parse_range(h, size) {
                    Some(r) => r,
                    None => {
                        res.status_code(StatusCode::RANGE_NOT_SATISFIABLE);
                        return Err(StorageError::InvalidRequest(format!(
                            "`Range: {h}` is not a byte range"
                        )));
                    }
                }
            }
        };
        let download = match service.get_raw(&token, range.clone()).await {
            Err(StorageError::Backend(m)) if range.is_some() && m.contains("outside") => {
                return Err(StorageError::InvalidRequest(
                    "the range starts past the end of the file".into(),
                ))
                .inspect_err(|_| {
                    res.status_code(StatusCode::RANGE_NOT_SATISFIABLE);
                });
            }
            other => other?,
        };
        let meta = &download.read.meta;
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&download.mime_type) {
            headers.insert(CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&disposition(&download.name)) {
            headers.insert(CONTENT_DISPOSITION, v);
        }
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        let len = match &download.read.range {
            Some(r) => {
                if let Ok(v) =
                    HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, meta.size))
                {
                    headers.insert(CONTENT_RANGE, v);
                }
                res.status_code(StatusCode::PARTIAL_CONTENT);
                r.end - r.start
            }
            None => meta.size,
        };
        res.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
        res.stream(download.read.body);
        Ok(())
    }

    async fn run(
        &self,
        req: &mut Request,
        depot: &Depot,
        res: &mut Response,
    ) -> Result<(), StorageError> {
        let service = &self.s.0;
        let who = caller(depot);
        match self.kind {
            Kind::Presign => {
                let body: PresignRequest = json_body(req).await?;
                ok(res, service.presign(&who, body).await?);
            }
            Kind::Complete => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Body {
                    file_id: String,
                }
                let body: Body = json_body(req).await?;
                let info = service.complete(&who, &body.file_id).await?;
                ok(res, serde_json::to_value(info).unwrap_or_default());
            }
            Kind::ChunkedInit => {
                let body: ChunkedInit = json_body(req).await?;
                ok(res, service.chunked_init(&who, body).await?);
            }
            Kind::Chunk => {
                let upload = param(req, "upload_id");
                let index: u64 = param(req, "index").parse().map_err(|_| {
                    StorageError::InvalidRequest("the chunk index must be a whole number".into())
                })?;
                let token = req.header::<String>("x-resume-token");
                let length = content_length(req);
                let body = body_stream(req);
                let v = service
                    .put_chunk(&who, &upload, index, token.as_deref(), length, body)
                    .await?;
                ok(res, v);
            }
            Kind::Progress => {
                let upload = param(req, "upload_id");
                ok(res, service.progress(&who, &upload).await?);
            }
            Kind::ChunkedComplete => {
                #[derive(serde::Deserialize, Default)]
                #[serde(default)]
                struct Body {
                    parts: Vec<PartRef>,
                }
                let upload = param(req, "upload_id");
                let empty = req
                    .headers()
                    .get(CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() == b"0");
                let body: Body = if empty {
                    Body::default()
                } else {
                    json_body(req).await?
                };
                ok(
                    res,
                    service.chunked_complete(&who, &upload, &body.parts).await?,
                );
            }
            Kind::Url => {
                let id = param(req, "file_id");
                let url = service.download_url(&who, &id).await?;
                ok(res, json!({ "url": url }));
            }
            Kind::Redirect => {
                let id = param(req, "file_id");
                let url = service.download_url(&who, &id).await?;
                res.status_code(StatusCode::FOUND);
                if let Ok(v) = HeaderValue::from_str(&url) {
                    res.headers_mut().insert(LOCATION, v);
                }
                ok(res, json!({ "url": url }));
            }
            Kind::RawPut => {
                let token = param(req, "token");
                let length = content_length(req);
                let body = body_stream(req);
                ok(res, service.put_raw(&token, length, body).await?);
            }
            Kind::RawGet => self.raw_get(req, res).await?,
        }
        Ok(())
    }
}

#[async_trait]
impl Handler for Route {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        if let Err(e) = self.run(req, depot, res).await {
            // A status set on the way (416) stays; everything else takes the error's.
            let keep = res.status_code == Some(StatusCode::RANGE_NOT_SATISFIABLE);
            fail(res, &e);
            if keep {
                res.status_code(StatusCode::RANGE_NOT_SATISFIABLE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_dispositions() {
        assert_eq!(parse_range("bytes=0-9", None), Some(Some(0..10)));
        assert_eq!(parse_range("bytes=5-", None), Some(Some(5..u64::MAX)));
        assert_eq!(parse_range("bytes=-4", Some(10)), Some(Some(6..10)));
        assert_eq!(parse_range("bytes=0-1,3-4", None), Some(None));
        assert_eq!(parse_range("bytes=9-2", None), None);
        assert_eq!(parse_range("items=0-1", None), None);
        assert_eq!(
            disposition("ré sumé.pdf"),
            "attachment; filename=\"r_ sum_.pdf\"; filename*=UTF-8''r%C3%A9%20sum%C3%A9.pdf"
        );
    }
}
