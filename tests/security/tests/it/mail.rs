//! A forgotten password, as a new user meets it: `objectos.yml` names an SMTP server
//! (`notifications.email`), the reset mail arrives there through the notification plugin (and
//! the job queue), its link resets the password, and the new password signs in. The delivery
//! job an administrator reads names the message, never its body or token. The SMTP server is a
//! real one on loopback (`aiosmtpd` from PyPI); without it the scenario is skipped, unless
//! `OBJECTOS_TEST_REQUIRE_SMTP` is set (CI).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Backend, CONFIG, Server, fixture_app};

struct Smtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp() -> Option<Smtp> {
    let installed = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("OBJECTOS_TEST_REQUIRE_SMTP").is_none(),
            "OBJECTOS_TEST_REQUIRE_SMTP is set but aiosmtpd is not installed"
        );
        eprintln!("skipped: aiosmtpd is not installed (pip install aiosmtpd==1.4.6)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir.path().join("box"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..200).any(|_| {
        let ok = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !ok {
            std::thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    assert!(up, "aiosmtpd did not start");
    Some(Smtp { child, port, dir })
}

/// The text body of the first message received, decoded as a mail client would.
async fn first_mail_text(smtp: &Smtp) -> String {
    let new = smtp.dir.path().join("box/new");
    for _ in 0..600 {
        if let Some(path) = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path())
        {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import email,sys; from email import policy; \
                     m=email.message_from_file(open(sys.argv[1]), policy=policy.default); \
                     print(m['subject']); print(m.get_body(preferencelist=('plain',)).get_content())",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return String::from_utf8(out.stdout).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no mail arrived");
}

pub(crate) async fn password_reset_by_mail(b: &Backend) {
    let Some(smtp) = start_smtp() else {
        return;
    };
    let config = format!(
        "{CONFIG}notifications:\n  email:\n    transport: smtp\n    from: \"ObjectOS <no-reply@objectos.test>\"\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: none\n",
        smtp.port
    );
    let srv = Server::start(b, &fixture_app(), &config).await;
    let label = srv.label;
    let owner = srv.sign_up("owner", "Owner-Passw0rd-x1").await;
    let mut rep = srv.create_user(&owner, "rep", "Rep-Passw0rd-y2").await;

    let r = srv
        .api
        .post(
            "/api/v1/auth/forget-password",
            None,
            json!({"email": rep.email}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    let mail = first_mail_text(&smtp).await;
    assert!(mail.starts_with("Reset"), "[{label}] {mail}");
    let token = mail
        .split("token=")
        .nth(1)
        .and_then(|t| t.split(|c: char| c.is_whitespace()).next())
        .unwrap_or_else(|| panic!("[{label}] no reset link in: {mail}"))
        .to_owned();

    let r = srv
        .api
        .post(
            "/api/v1/auth/reset-password",
            None,
            json!({"token": token, "newPassword": "Rep-New-Passw0rd-z3"}),
        )
        .await;
    assert_eq!(r.status, 200, "[{label}] {}", r.text);
    rep.password = "Rep-New-Passw0rd-z3".into();
    srv.sign_in(&rep).await;

    // The delivery ran as a job of the job queue, which an administrator reads; its payload
    // names the message, never its body or link.
    let mut job = Value::Null;
    for _ in 0..200 {
        let r = srv
            .api
            .get("/api/v1/jobs?handler=notification.deliver", owner.t())
            .await;
        assert_eq!(r.status, 200, "[{label}] {}", r.text);
        job = r.body["items"][0].clone();
        if job["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["status"], "completed", "[{label}] {job}");
    assert!(!job.to_string().contains(&token), "[{label}] {job}");
    srv.stop();
}
