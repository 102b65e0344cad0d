//! `hookgate plugin new`: writes a plugin project to start from, in Rust,
//! JavaScript or Python, each building (or, for JavaScript, uploading) with
//! one command. The templates are `plugins/templates/*`, the Rust SDK
//! `plugins/sdk` and the interface `wit/plugin.wit`, all embedded in the
//! binary, so a project needs no checkout of this repository.

use std::path::{Path, PathBuf};

use crate::model::plugin::validate_name;

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

/// One file of a project: its path in the project, its text, whether it is
/// a script to run.
struct File {
    path: &'static str,
    text: String,
    executable: bool,
}

const WIT: &str = include_str!("../wit/plugin.wit");

/// The SDK as its own crate under vendor/, which reads `../../wit` as it
/// does in this repository: the project's wit/.
const SDK_CARGO: &str = include_str!("../plugins/sdk/Cargo.toml");
const SDK_LIB: &str = include_str!("../plugins/sdk/src/lib.rs");
const SDK_README: &str = include_str!("../plugins/sdk/README.md");

const RUST_CARGO: &str = include_str!("../plugins/templates/rust/Cargo.toml.tmpl");
const RUST_LIB: &str = include_str!("../plugins/templates/rust/lib.rs");
const RUST_README: &str = include_str!("../plugins/templates/rust/README.md");

const JS_PLUGIN: &str = include_str!("../plugins/templates/js/plugin.js");
const JS_README: &str = include_str!("../plugins/templates/js/README.md");

const PY_APP: &str = include_str!("../plugins/templates/python/app.py");
const PY_GLUE: &str = include_str!("../plugins/templates/python/hookgate_plugin.py");
const PY_BUILD: &str = include_str!("../plugins/templates/python/build.sh");
const PY_README: &str = include_str!("../plugins/templates/python/README.md");

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("invalid plugin name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("{0} exists and is not an empty directory; choose another --dir")]
    NotEmpty(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn check_name(name: &str) -> Result<(), NewError> {
    let bad = |reason: String| NewError::BadName {
        name: name.to_string(),
        reason,
    };
    validate_name(name).map_err(|e| bad(e.message))?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(bad("it must start with a letter".into()));
    }
    Ok(())
}

fn files(lang: Lang, name: &str) -> Vec<File> {
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__CRATE__", &name.replace('-', "_"))
    };
    let file = |path, text: String| File {
        path,
        text,
        executable: false,
    };
    match lang {
        Lang::Rust => vec![
            file("Cargo.toml", fill(RUST_CARGO)),
            file("src/lib.rs", fill(RUST_LIB)),
            file("README.md", fill(RUST_README)),
            file(".gitignore", "/target\n".into()),
            file("wit/plugin.wit", WIT.into()),
            file("vendor/hookgate-plugin/Cargo.toml", SDK_CARGO.into()),
            file("vendor/hookgate-plugin/src/lib.rs", SDK_LIB.into()),
            file("vendor/hookgate-plugin/README.md", SDK_README.into()),
        ],
        Lang::Js => vec![
            file("plugin.js", fill(JS_PLUGIN)),
            file("README.md", fill(JS_README)),
        ],
        Lang::Python => vec![
            file("app.py", fill(PY_APP)),
            file("hookgate_plugin.py", PY_GLUE.into()),
            File {
                path: "build.sh",
                text: PY_BUILD.into(),
                executable: true,
            },
            file("README.md", fill(PY_README)),
            file(".gitignore", "/.venv\n/plugin.wasm\n__pycache__/\n".into()),
            file("wit/plugin.wit", WIT.into()),
        ],
    }
}

/// The one command that builds (or uploads) a project of `lang`.
pub fn next_step(lang: Lang, name: &str) -> String {
    match lang {
        Lang::Rust => format!(
            "cargo build --release --target wasm32-wasip2   # -> target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        Lang::Js => format!(
            "curl -X POST \"$HOOKGATE/v1/plugins?name={name}\" -H \"Authorization: Bearer $KEY\" -H 'Content-Type: text/javascript' --data-binary @plugin.js"
        ),
        Lang::Python => "./build.sh   # -> plugin.wasm".into(),
    }
}

/// Writes a new project for the plugin `name` in `dir` (`./name` when
/// `None`), which must not exist or be empty. Returns the directory and the
/// files written, relative to it.
pub fn write(
    lang: Lang,
    name: &str,
    dir: Option<&Path>,
) -> Result<(PathBuf, Vec<&'static str>), NewError> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    let empty = match std::fs::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
    };
    if !empty {
        return Err(NewError::NotEmpty(dir));
    }
    let mut written = Vec::new();
    for file in files(lang, name) {
        let path = dir.join(file.path);
        let io = |source| NewError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &file.text).map_err(io)?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        written.push(file.path);
    }
    Ok((dir, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", "Bad", "a b", "1st", "-x", "a/b", "é"] {
            assert!(
                matches!(check_name(bad), Err(NewError::BadName { .. })),
                "{bad:?}"
            );
        }
        for good in ["a", "crm-sync", "my_plugin2"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn templates_are_filled_in() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            for file in files(lang, "acme-sync") {
                assert!(
                    !file.text.contains("__NAME__") && !file.text.contains("__CRATE__"),
                    "{lang:?} {}",
                    file.path
                );
            }
        }
        let rust = files(Lang::Rust, "acme-sync");
        let cargo = &rust[0].text;
        assert!(cargo.contains("name = \"acme-sync\""), "{cargo}");
        assert!(rust[2].text.contains("release/acme_sync.wasm"));
        // The SDK copy reads the interface from the project's wit/.
        assert!(SDK_LIB.contains(r#"path: "../../wit""#));
        assert!(rust.iter().any(|f| f.path == "wit/plugin.wit"));
        assert!(
            !SDK_CARGO.contains("workspace = true"),
            "the SDK must build outside this workspace"
        );
    }

    #[test]
    fn refuses_a_directory_in_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
        assert!(matches!(
            write(Lang::Js, "demo", Some(dir.path())),
            Err(NewError::NotEmpty(_))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "x"
        );
        let (_, written) = write(Lang::Python, "demo", Some(&dir.path().join("py"))).unwrap();
        assert!(written.contains(&"app.py"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("py/build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }
}
