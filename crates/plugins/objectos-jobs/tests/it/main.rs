//! Integration tests of the jobs plugin: a real kernel (data + http + jobs + a test plugin) on
//! SQLite and, when `OBJECTOS_TEST_POSTGRES_URL` is set, on PostgreSQL.

#[cfg(test)]
mod support;

/// Runs `$scenario(url)` as two tests: on a SQLite file, and on PostgreSQL (ignored when
/// `OBJECTOS_TEST_POSTGRES_URL` was not set at build time).
#[cfg(test)]
macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let db = objectos_testkit::TestDatabase::sqlite_file();
                super::$scenario(&db.url).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(not(objectos_pg), ignore = "OBJECTOS_TEST_POSTGRES_URL is not set")]
            async fn postgres() {
                let db = objectos_testkit::TestDatabase::postgres("jobs")
                    .await
                    .unwrap();
                super::$scenario(&db.url).await;
                db.cleanup().await;
            }
        }
    };
}

#[cfg(test)]
mod amqp;
#[cfg(test)]
mod http;
#[cfg(test)]
mod metrics;
#[cfg(test)]
mod queue;
#[cfg(test)]
mod routes;
#[cfg(test)]
mod schedule;
