//! The PostgreSQL half of this suite, as the test runner counts it.
//!
//! The tests here run their scenario on SQLite and then, when `OBJECTOS_TEST_POSTGRES_URL` is
//! set, again on PostgreSQL, inside one test. Without the variable this test is marked ignored
//! (`cfg(objectos_pg)`, from the build script), so the runner's summary shows a skipped test
//! instead of a run that passed on SQLite alone looking complete. With the variable, it checks
//! the server answers and lets this suite create a schema, so a misconfigured run fails here by
//! name.

#[tokio::test]
#[cfg_attr(
    not(objectos_pg),
    ignore = "OBJECTOS_TEST_POSTGRES_URL is not set: the PostgreSQL runs of this suite are skipped"
)]
async fn postgresql() {
    let db = objectos_testkit::TestDatabase::postgres("services")
        .await
        .expect("OBJECTOS_TEST_POSTGRES_URL was set when this test was built");
    assert!(db.schema().is_some());
    db.cleanup().await;
}
