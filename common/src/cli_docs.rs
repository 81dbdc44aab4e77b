//! Man pages and shell completions generated from a binary's clap definition, so that what `--help` says,
//! what `man` shows and what the shell completes never drift apart. The package step calls this through each
//! binary's hidden `generate-docs` command.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes `man/NAME.1` and `man/NAME-SUBCOMMAND.1` (one page per visible subcommand, nested ones included)
/// and `completions/{NAME.bash, _NAME, NAME.fish}` under `dir`; returns the files written.
pub fn write(command: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let name = command.get_name().to_string();
    let man_dir = dir.join("man");
    let completion_dir = dir.join("completions");
    std::fs::create_dir_all(&man_dir)?;
    std::fs::create_dir_all(&completion_dir)?;
    clap_mangen::generate_to(command.clone(), &man_dir)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(&man_dir)? {
        written.push(entry?.path());
    }
    let mut command = command;
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let path = completion_dir.join(file);
        let mut out = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut command, &name, &mut out);
        written.push(path);
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> clap::Command {
        clap::Command::new("tool")
            .about("an example")
            .subcommand(clap::Command::new("run").about("runs"))
            .subcommand(
                clap::Command::new("cert")
                    .subcommand(clap::Command::new("list").arg(clap::Arg::new("all").long("all"))),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_subcommand_and_three_shells() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(example(), dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        for expected in [
            "man/tool.1",
            "man/tool-run.1",
            "man/tool-cert.1",
            "man/tool-cert-list.1",
            "completions/tool.bash",
            "completions/_tool",
            "completions/tool.fish",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("secret")), "{names:?}");
        let fish = std::fs::read_to_string(dir.path().join("completions/tool.fish")).unwrap();
        assert!(fish.contains("-l all"), "{fish}");
    }
}
