//! The security suite: each attack a red team tried on a running podgate, as hostile tenants and
//! hostile sandboxes would, kept as a regression test against the real server, engine and CLI.
//! One module per front; each test names the finding it replays (issue 17). Unit tests cover
//! what needs no server: IPv6 spellings of loopback in code URLs (`podgate-core`
//! `code_source`), image references (`podgate-types` `image_ref`), engine error redaction
//! (`podgate-docker` `errors`), the SSH connection throttle (`podgate-ssh` `throttle`), the
//! sync guard (`podgate` `cli::sync::guard`) and the database breaker (`podgate-store`).
//!
//! | finding | attack | test |
//! |---|---|---|
//! | 1 | another tenant's snapshot by image id or id prefix | `tenants::snapshot_by_image_id` |
//! | 2 | an image's HEALTHCHECK/USER runs code as root; ONBUILD in imports | `images::image_config_is_neutralised` |
//! | 2 | root in a root sandbox serves its agent's socket path itself | `sandbox::a_root_sandbox_cannot_impersonate_its_agent` |
//! | 3 | `cp` plants setuid binaries | `client::downloads_drop_privilege_bits` |
//! | 4 | `sync` plants git hooks and config | `client::sync_keeps_executable_config_out` |
//! | 5 | image names reach the host's network | `images::registries_are_allowlisted` |
//! | 6 | `/metrics` flooded with method names | `server::metrics_labels_are_bounded` |
//! | 7 | the writable layer and `/workspace` fill the host's disk | `disk::filling_a_sandbox_stops_at_its_caps` |
//! | 7 | snapshots and volumes copy data with no quota | `disk::the_disk_quota_counts_sandboxes_volumes_and_snapshots` |
//! | 7 | a fork refused for quota leaves its snapshot | `tenants::a_refused_fork_leaves_no_snapshot` |
//! | 8 | exec output fills the server's memory | `sandbox::exec_output_is_bounded` |
//! | 9 | nofile and pids sized for the host | `sandbox::limits_are_sized_for_tenants` |
//! | 10 | concurrent uses of a paused sandbox fail | `sandbox::paused_sandbox_resumes_once` |
//! | 11 | requests hang during a database outage | `server::database_outage_fails_fast` |
//! | 12 | failed logins grow the audit trail | `server::failed_logins_are_summarised` |
//! | 13 | an unbounded `/tmp` OOM-kills the agent | `sandbox::tmp_is_bounded` |
//! | 14 | the sandbox user stops the sandbox | `sandbox::pid1_ignores_signals_from_inside` |
//! | 14 | the sandbox user signals, traces or impersonates the agent (same uid) | `sandbox::the_agent_is_out_of_the_users_reach` |
//! | 15 | share links cannot be revoked, outlive their token | `shares::share_links_can_be_revoked` |
//! | 16 | DNS reveals other sandboxes' ids | `tenants::dns_does_not_reveal_other_sandboxes` |
//! | 18 | `/proc` and `/sys` files break the file API | `sandbox::kernel_files_download` |
//! | 19 | memory of 2^63 or more | `server::huge_values_are_refused` |
//! | 20 | templates out of range; template env visible | `tenants::templates_are_checked_and_private` |
//! | 21 | run directories outlive removed containers | `sandbox::run_dir_goes_with_its_container` |
//! | 22 | engine errors leak host addresses | `images::registries_are_allowlisted` |
//! | 23 | SSH: weak algorithms, no connection throttling | `ssh::ssh_is_strict` |
//! | vault | a workspace readable from the host's disk | `vault::an_encrypted_workspace_is_unreadable_at_rest_until_unlocked` |

#[path = "../common/mod.rs"]
mod common;

mod client;
mod disk;
mod images;
mod sandbox;
mod server;
mod shares;
mod ssh;
mod tenants;
mod vault;

use podgate_client::Client;
use podgate_types::api::ExecRequest;
use podgate_types::users::CreateUserRequest;

/// The test image (busybox, uid 1000 owns /workspace).
pub const BUSYBOX: &str = "podgate/busybox:test";

/// A new non-admin user's client.
pub async fn user(srv: &common::Server, name: &str) -> Client {
    let created = srv.client().create_user(&CreateUserRequest { name: name.into(), role: None }).await.unwrap();
    Client::new(&srv.url, &created.token.secret).unwrap()
}

/// Runs a shell command line in a sandbox: (exit code, stdout + stderr).
pub async fn sh(c: &Client, id: &str, cmd: &str) -> (i32, String) {
    let req = ExecRequest { argv: vec![cmd.into()], shell: true, ..Default::default() };
    let out = c.exec(id, &req).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout.0).into_owned() + &String::from_utf8_lossy(&out.stderr.0);
    (out.exit_code, text)
}

/// A busybox sandbox named `name`.
pub fn busybox(name: &str) -> podgate_types::api::CreateSandboxRequest {
    podgate_types::api::CreateSandboxRequest {
        name: Some(name.into()),
        image: Some(BUSYBOX.into()),
        ..Default::default()
    }
}
