//! The black-box security suite (issue #5): a real `objectos serve` child process, driven over
//! HTTP on a loopback socket, on SQLite and (when `OBJECTOS_TEST_POSTGRES_URL` is set) on
//! PostgreSQL. Each test runs its scenario once per backend on a server of its own.
//!
//! Every refusal is checked for its status and stable `code`, and for not revealing the hidden
//! record or field it protects.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authn;
mod crm;
mod fields;
mod injection;
mod object_perms;
mod rows;
mod secrets;
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

#[test]
fn a_bad_permissions_section_stops_the_server_with_its_location() {
    crm::bad_permissions_section_refuses_to_start();
}
