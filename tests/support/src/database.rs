//! Which store the tests' gateways keep their data in, chosen by one
//! switch: sled in their data dir (the default), or with
//! `HOOKGATE_TEST_BACKEND=postgres` a PostgreSQL database of their own per
//! data dir, on the server `HOOKGATE_TEST_DATABASE_URL` names
//! (`tests/postgres.sh` starts a throwaway one). A gateway started again on
//! the same data dir finds the same database, as it would find its sled
//! files, so restart and crash tests mean the same on both.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// The switch: `sled` or `postgres`.
pub const BACKEND_VAR: &str = "HOOKGATE_TEST_BACKEND";
/// The server the databases are made on.
pub const SERVER_VAR: &str = "HOOKGATE_TEST_DATABASE_URL";

/// Whether the switch says PostgreSQL. Panics on a value it does not know,
/// or when it says PostgreSQL and no server is named.
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR).as_deref() {
        Err(_) | Ok("") | Ok("sled") => false,
        Ok("postgres") => {
            assert!(
                std::env::var(SERVER_VAR).is_ok_and(|url| !url.is_empty()),
                "{BACKEND_VAR}=postgres needs {SERVER_VAR}: run the tests with \
                 `bash tests/run`, which starts a throwaway PostgreSQL server"
            );
            true
        }
        Ok(other) => panic!("{BACKEND_VAR} is `sled` or `postgres`, not `{other}`"),
    }
}

/// The URL of the database of the gateway on `data_dir`, made if it is not
/// there yet, when the switch says PostgreSQL.
pub fn for_data_dir(data_dir: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let server = std::env::var(SERVER_VAR).expect("checked by on_postgres");
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let digest = Sha256::digest(path.to_string_lossy().as_bytes());
    let name = format!("hg_it_{}", hex::encode(&digest[..8]));
    create(&server, &name);
    Some(with_database(&server, &name))
}

/// The URL of a new, empty database on the server `HOOKGATE_TEST_DATABASE_URL`
/// names, whatever the switch says: for tests of several gateways on one
/// database.
pub fn fresh() -> String {
    let server = std::env::var(SERVER_VAR).unwrap_or_else(|_| {
        panic!(
            "{SERVER_VAR} is not set: run the tests with `bash tests/run`, which starts a \
             throwaway PostgreSQL server"
        )
    });
    let name = format!("hg_it_{:016x}", rand::random::<u64>());
    create(&server, &name);
    with_database(&server, &name)
}

/// Everything the gateway on `data_dir` stored in its database, as
/// `pg_dump` writes it (binary columns in hex), when the switch says
/// PostgreSQL.
pub fn dump(data_dir: &Path) -> Option<Vec<u8>> {
    let url = for_data_dir(data_dir)?;
    let out = Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "-d", &url])
        .output()
        .unwrap_or_else(|e| panic!("run pg_dump (Debian's postgresql-client): {e}"));
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates database `name` on `server` unless it exists.
fn create(server: &str, name: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server, "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap_or_else(|e| panic!("run psql (Debian's postgresql-client): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "cannot create the test database {name}: {stderr}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_replaces_the_servers() {
        assert_eq!(
            with_database("postgres://pg@127.0.0.1:5432/postgres", "hg_it_1"),
            "postgres://pg@127.0.0.1:5432/hg_it_1"
        );
        assert_eq!(
            with_database("postgres://pg@h:1?sslmode=disable", "x"),
            "postgres://pg@h:1/x?sslmode=disable"
        );
    }
}
