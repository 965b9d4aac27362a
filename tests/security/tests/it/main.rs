//! The black-box security suite (issue #5): a real `objectos serve` child process, driven over
//! HTTP on a loopback socket, on SQLite and (when `OBJECTOS_TEST_POSTGRES_URL` is set) on
//! PostgreSQL. Each test runs its scenario once per backend on a server of its own.
//!
//! Every refusal is checked for its status and stable `code`, and for not revealing the hidden
//! record or field it protects.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accept;
mod authn;
mod check;
mod cluster;
mod crm;
mod csrf;
mod fields;
mod injection;
mod jobs;
mod mail;
mod nul;
mod object_perms;
mod observability;
mod prehijack;
mod rollups;
mod rows;
mod secrets;
mod services;
mod storage;
mod support;
mod tenants;
mod world;

use support::backends;

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_callers_get_401_everywhere_but_the_open_routes() {
    for b in backends() {
        authn::anonymous(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_passwords_lock_and_sign_in_is_rate_limited() {
    for b in backends() {
        authn::lockout_and_rate_limit(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_revoked_and_signed_out_sessions_are_refused() {
    for b in backends() {
        authn::sessions(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_object_permission_is_403_and_never_reveals_records() {
    for b in backends() {
        object_perms::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rls_and_sharing_hide_rows_in_every_read() {
    for b in backends() {
        rows::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn field_level_security_hides_values_and_refuses_queries_on_them() {
    for b in backends() {
        fields::reads(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn non_editable_and_system_fields_cannot_be_written() {
    for b in backends() {
        fields::writes(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn organizations_never_see_each_others_records() {
    for b in backends() {
        tenants::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn injection_attempts_fail_with_400_and_change_nothing() {
    for b in backends() {
        injection::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_their_token_health_times_the_database_and_json_logs_carry_request_ids() {
    for b in backends() {
        observability::run(&b).await;
    }
}

/// A client's trace through the server: the request that enqueues a job, the job's run, a
/// permission decision, plugin statements; and the active sessions gauge, exactly.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_and_the_job_it_enqueued_share_one_trace() {
    for b in backends() {
        observability::traces(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_a_log_an_audit_event_or_an_answer() {
    for b in backends() {
        secrets::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crm_preset_restrictions_hold_on_every_route() {
    for b in backends() {
        crm::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_permissions_section_of_objectos_yml_is_applied() {
    for b in backends() {
        crm::permissions_section(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_writes_from_other_sites_or_not_as_json_are_refused() {
    for b in backends() {
        csrf::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    for b in backends() {
        csrf::headers(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn descriptor_exhaustion_is_logged_once_and_survived() {
    accept::run().await;
}

#[test]
fn a_bad_permissions_section_stops_the_server_with_its_location() {
    crm::bad_permissions_section_refuses_to_start();
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_refused_with_400_before_any_sql() {
    for b in backends() {
        nul::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rollups_never_reveal_hidden_children() {
    for b in backends() {
        rollups::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn permission_checks_on_records_outside_the_organization_answer_false() {
    for b in backends() {
        check::run(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_one_database_publish_each_outbox_event_once() {
    for b in backends() {
        cluster::run(&b).await;
    }
}

/// Two nodes on one PostgreSQL schema and one Redis (`OBJECTOS_TEST_REDIS_URL`).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(all(objectos_pg, objectos_redis)),
    ignore = "needs OBJECTOS_TEST_POSTGRES_URL and OBJECTOS_TEST_REDIS_URL"
)]
async fn two_nodes_on_redis_share_events_and_session_revocations() {
    let pg = std::env::var("OBJECTOS_TEST_POSTGRES_URL").unwrap();
    let redis = std::env::var("OBJECTOS_TEST_REDIS_URL").unwrap();
    let pair = cluster::RedisPair::start(&pg, &redis).await;
    let owner = cluster::events_over_redis(&pair).await;
    cluster::revocation_over_redis(&pair, &owner).await;
}

/// Two nodes on one PostgreSQL schema with the embedded job queue: a schedule ticks once per
/// second across both, 1,000 jobs enqueued through both complete once each, and a node killed
/// mid-run loses none of its jobs.
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(objectos_pg), ignore = "needs OBJECTOS_TEST_POSTGRES_URL")]
async fn two_nodes_run_each_tick_and_job_once_and_survive_a_killed_node_embedded() {
    let pg = std::env::var("OBJECTOS_TEST_POSTGRES_URL").unwrap();
    jobs::two_nodes(&pg, jobs::JobBackend::Embedded).await;
}

/// Two nodes started at the same moment on an empty PostgreSQL schema both become ready and
/// create the schema once (the cluster-wide migration lock).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(not(objectos_pg), ignore = "needs OBJECTOS_TEST_POSTGRES_URL")]
async fn two_nodes_starting_together_on_an_empty_database_migrate_once() {
    let pg = std::env::var("OBJECTOS_TEST_POSTGRES_URL").unwrap();
    jobs::two_nodes_start_together_on_an_empty_database(&pg).await;
}

/// The same through RabbitMQ (`jobs.backend: rabbitmq`, `OBJECTOS_TEST_AMQP_URL`).
#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    not(all(objectos_pg, objectos_amqp)),
    ignore = "needs OBJECTOS_TEST_POSTGRES_URL and OBJECTOS_TEST_AMQP_URL"
)]
async fn two_nodes_run_each_tick_and_job_once_and_survive_a_killed_node_rabbitmq() {
    let pg = std::env::var("OBJECTOS_TEST_POSTGRES_URL").unwrap();
    let amqp = std::env::var("OBJECTOS_TEST_AMQP_URL").unwrap();
    jobs::two_nodes(&pg, jobs::JobBackend::Rabbitmq(amqp)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_cannot_read_or_manage_job_runs() {
    for b in backends() {
        jobs::members_cannot_read_job_runs(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_made_organization_cannot_pre_hijack_an_invited_account() {
    for b in backends() {
        prehijack::pre_hijack(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_made_organization_cannot_tell_which_addresses_have_accounts() {
    for b in backends() {
        prehijack::enumeration(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_password_is_reset_from_the_mail_an_smtp_server_received() {
    for b in backends() {
        mail::password_reset_by_mail(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_click_unsubscribe_without_a_session_suppresses_the_topic() {
    for b in backends() {
        mail::unsubscribe_by_mail(&b).await;
    }
}
