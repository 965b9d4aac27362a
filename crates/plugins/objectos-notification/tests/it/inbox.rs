//! The official client's `notifications` namespace: list with its filters and shapes, the
//! `read` boolean check, markRead of one's own messages only, markAllRead.

use objectos_kernel::contracts::{InAppRequest, Notifier};
use objectos_notification::NotificationSettings;
use objectos_testkit::TestDatabase;
use serde_json::json;

use crate::on_both;
use crate::support::{Harness, Req, SignIn};

async fn add(h: &Harness, user: &str, org: &str, title: &str, kind: &str) -> String {
    h.service
        .notify_user(InAppRequest {
            user_id: user.into(),
            tenant: Some(org.into()),
            kind: kind.into(),
            title: title.into(),
            body: format!("{title} body"),
            action_url: Some(format!("/app/{title}")),
            data: Some(json!({ "n": title })),
        })
        .await
        .unwrap()
        .id
}

async fn the_inbox_serves_the_client_shapes(db: TestDatabase) {
    let h = Harness::boot(db, NotificationSettings::default()).await;
    let a = add(&h, "u1", "org1", "first", "notify").await;
    let b = add(&h, "u1", "org1", "second", "approval.comment").await;
    let _c = add(&h, "u1", "org1", "third", "notify").await;
    let other = add(&h, "u2", "org1", "theirs", "notify").await;

    let list = h
        .call(Req::get("/api/v1/notifications?limit=10").user("u1", "org1"))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["success"], true);
    let data = &list.body["data"];
    assert_eq!(data["unreadCount"], 3, "{data}");
    let items = data["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{data}");
    let first = items.iter().find(|i| i["id"] == a.as_str()).unwrap();
    assert_eq!(first["type"], "notify");
    assert_eq!(first["title"], "first");
    assert_eq!(first["body"], "first body");
    assert_eq!(first["read"], false);
    assert_eq!(first["actionUrl"], "/app/first");
    assert_eq!(first["data"], json!({ "n": "first" }));
    assert!(first["createdAt"].is_string(), "{first}");

    let typed = h
        .call(Req::get("/api/v1/notifications?type=approval.comment").user("u1", "org1"))
        .await;
    let typed = typed.body["data"]["notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0]["id"], b.as_str());

    let bad = h
        .call(Req::get("/api/v1/notifications?read=yes").user("u1", "org1"))
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert_eq!(bad.body["success"], false);
    assert_eq!(bad.body["error"]["code"], "invalid_boolean");
    assert_eq!(bad.body["error"]["httpStatus"], 400);

    // Only the caller's own unread messages change.
    let read = h
        .call(
            Req::post(
                "/api/v1/notifications/read",
                json!({ "ids": [a, other, "no-such-id"] }),
            )
            .user("u1", "org1"),
        )
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        read.body["data"],
        json!({ "success": true, "readCount": 1 })
    );
    let unread = h
        .call(Req::get("/api/v1/notifications?read=false").user("u1", "org1"))
        .await;
    assert_eq!(
        unread.body["data"]["notifications"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let done = h
        .call(Req::get("/api/v1/notifications?read=true").user("u1", "org1"))
        .await;
    assert_eq!(done.body["data"]["notifications"][0]["id"], a.as_str());

    let malformed = h
        .call(Req::post("/api/v1/notifications/read", json!({ "ids": "x" })).user("u1", "org1"))
        .await;
    assert_eq!(malformed.status, 400, "{:?}", malformed.body);
    assert_eq!(malformed.body["error"]["code"], "VALIDATION_FAILED");

    let all = h
        .call(Req::post("/api/v1/notifications/read/all", json!({})).user("u1", "org1"))
        .await;
    assert_eq!(all.body["data"], json!({ "success": true, "readCount": 2 }));
    let after = h
        .call(Req::get("/api/v1/notifications").user("u1", "org1"))
        .await;
    assert_eq!(after.body["data"]["unreadCount"], 0);

    // The other user's message is untouched, and another organization sees nothing.
    let theirs = h
        .call(Req::get("/api/v1/notifications").user("u2", "org1"))
        .await;
    assert_eq!(theirs.body["data"]["unreadCount"], 1);
    let elsewhere = h
        .call(Req::get("/api/v1/notifications").user("u1", "org2"))
        .await;
    assert_eq!(elsewhere.body["data"]["notifications"], json!([]));

    let anon = h.call(Req::get("/api/v1/notifications")).await;
    assert_eq!(anon.status, 401, "{:?}", anon.body);
    assert_eq!(anon.body["error"]["code"], "UNAUTHENTICATED");
    h.finish().await;
}
on_both!(
    the_inbox_serves_the_client_shapes_sqlite,
    the_inbox_serves_the_client_shapes_postgres,
    the_inbox_serves_the_client_shapes
);
