//! The man pages and shell completions under `dist/`, which the Debian
//! package installs (Cargo.toml, `package.metadata.deb`). They are rendered
//! from the clap definitions both binaries parse (`brokerd::cli::Args`,
//! `brokerd::cli::DaemonArgs`), so the CLI has one definition; they are
//! committed because cargo-deb packages files at fixed paths and cannot reach
//! a build script's `OUT_DIR`.
//!
//! After changing the command line, regenerate them:
//!
//! ```sh
//! BROKERD_UPDATE_DIST=1 cargo test --test cli_assets
//! ```
//!
//! `clap_complete` and `clap_mangen` are dev-dependencies: the shipped
//! binaries do not link them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use brokerd::cli::{Args, DaemonArgs};
use clap::CommandFactory;
use clap_complete::Shell;

/// Where the generated files live, relative to the crate root.
const DIST: &str = "dist";

/// One binary: its clap command and the man section of its pages.
struct Binary {
    command: clap::Command,
    section: &'static str,
}

/// brokerd is a daemon, so section 8 (system administration); brokerctl is
/// a user command, section 1.
fn binaries() -> [Binary; 2] {
    [
        Binary {
            command: Args::command(),
            section: "1",
        },
        Binary {
            command: DaemonArgs::command(),
            section: "8",
        },
    ]
}

/// The completion files: shell, folder under `dist/completions`, file name.
fn completion_files(name: &str) -> [(Shell, &'static str, String); 3] {
    [
        // bash-completion loads completions/NAME when NAME is first completed.
        (Shell::Bash, "bash", name.to_string()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ]
}

/// The subcommands a user can type, without clap's `help`.
fn subcommands(command: &clap::Command) -> Vec<String> {
    command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// Every file under `dist/`, rendered now: path relative to `dist/` → bytes.
fn rendered() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for Binary {
        mut command,
        section,
    } in binaries()
    {
        let name = command.get_name().to_string();
        // One page for the binary and one per subcommand (its options), as
        // `git` does: brokerctl.1, brokerctl-token.1, ... No page for clap's
        // `help` subcommand, which `generate` below adds to `command`.
        let mut pages_of = command.clone().disable_help_subcommand(true);
        pages_of.build();
        for (shell, folder, file) in completion_files(&name) {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, &name, &mut out);
            files.insert(Path::new("completions").join(folder).join(file), out);
        }
        let pages = std::iter::once(pages_of.clone()).chain(pages_of.get_subcommands().cloned());
        for page in pages.filter(|c| !c.is_hide_set()) {
            let man = clap_mangen::Man::new(page).section(section);
            let mut out = Vec::new();
            man.render(&mut out).unwrap();
            files.insert(Path::new("man").join(man.get_filename()), out);
        }
    }
    files
}

/// The files now under `dist/`, relative to it.
fn committed(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DIST)
}

#[test]
fn dist_is_rendered_from_the_current_cli() {
    let dir = dist();
    let want = rendered();
    if std::env::var_os("BROKERD_UPDATE_DIST").is_some() {
        let _ = fs::remove_dir_all(&dir);
        for (rel, bytes) in &want {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
        }
        return;
    }
    let have = committed(&dir);
    let stale: Vec<_> = want
        .iter()
        .filter(|(rel, bytes)| have.get(*rel) != Some(bytes))
        .map(|(rel, _)| rel.display().to_string())
        .collect();
    let extra: Vec<_> = have
        .keys()
        .filter(|rel| !want.contains_key(*rel))
        .map(|rel| rel.display().to_string())
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "dist/ does not match the command line: missing or different {stale:?}, \
         no longer generated {extra:?}. Regenerate and commit them: \
         BROKERD_UPDATE_DIST=1 cargo test --test cli_assets"
    );
}

#[test]
fn every_asset_names_every_subcommand() {
    let files = rendered();
    for Binary { command, section } in binaries() {
        let name = command.get_name().to_string();
        let subs = subcommands(&command);
        assert!(!subs.is_empty(), "{name} has no subcommands?");
        let main_page = Path::new("man").join(format!("{name}.{section}"));
        let mut texts = vec![main_page];
        for (_, folder, file) in completion_files(&name) {
            texts.push(Path::new("completions").join(folder).join(file));
        }
        for rel in &texts {
            let text = String::from_utf8_lossy(&files[rel]);
            for sub in &subs {
                // roff escapes the hyphen: check\-config.
                let in_roff = sub.replace('-', "\\-");
                assert!(
                    text.contains(sub.as_str()) || text.contains(&in_roff),
                    "{} does not mention `{name} {sub}`",
                    rel.display()
                );
            }
        }
        for sub in &subs {
            let page = Path::new("man").join(format!("{name}-{sub}.{section}"));
            assert!(files.contains_key(&page), "no man page {}", page.display());
        }
    }
}

/// groff renders every page without a warning; without groff, each page at
/// least starts with the roff title line.
#[test]
fn man_pages_parse() {
    let groff = Command::new("groff").arg("--version").output().is_ok();
    if !groff {
        // Past the output capture, which takes only print! and eprint!.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** groff is not installed: the man pages' roff was only checked \
             for its header (apt-get install groff-base) ***\n"
        );
    }
    for (rel, bytes) in rendered().iter().filter(|(rel, _)| rel.starts_with("man")) {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq \\(aq") || text.starts_with(".TH "),
            "{} does not start like a man page:\n{text}",
            rel.display()
        );
        assert!(text.contains("\n.TH "), "{} has no .TH line", rel.display());
        if !groff {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join(rel.file_name().unwrap());
        fs::write(&page, bytes).unwrap();
        // -ww: all warnings; -z: parse and format, print nothing.
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "groff has something to say about {}:\n{stderr}",
            rel.display()
        );
    }
}
