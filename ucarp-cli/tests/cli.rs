//! The built `ucarp` binary's command line: exit codes, one-line errors,
//! help, and the man page kept in step with --help.

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn ucarp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ucarp"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const BASE: [&str; 10] = [
    "-i",
    "lo",
    "-s",
    "127.0.0.1",
    "-v",
    "1",
    "-p",
    "pw",
    "-a",
    "10.0.0.9",
];

fn with(extra: &[&str]) -> Output {
    let mut args = BASE.to_vec();
    args.extend_from_slice(extra);
    ucarp(&args)
}

/// Refused with exit code 1 and exactly one line naming the problem.
fn assert_refused(output: &Output, expected: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let text = stderr(output);
    assert_eq!(text.lines().count(), 1, "not one line: {text}");
    assert!(text.contains(expected), "{text:?} lacks {expected:?}");
}

#[test]
fn help_prints_usage_with_an_example() {
    for flag in ["-h", "--help", "--he"] {
        let output = ucarp(&[flag]);
        assert_eq!(output.status.code(), Some(0));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("--interface=<if> (-i <if>)"), "{text}");
        assert!(text.contains("Sample usage"));
    }
}

#[test]
fn unknown_options_and_missing_values() {
    assert_refused(&ucarp(&["--bogus"]), "unexpected argument '--bogus'");
    assert_refused(&ucarp(&["-i"]), "a value is required");
    assert_refused(&ucarp(&["-Q"]), "unexpected argument '-Q'");
    assert_refused(&ucarp(&[]), "--interface (-i) is required");
}

#[test]
fn bad_values_name_the_option() {
    assert_refused(
        &with(&["-b", "256"]),
        "--advbase (-b): 256 is out of range 0..=255",
    );
    assert_refused(
        &with(&["-k", "999"]),
        "--advskew (-k): 999 is out of range 0..=255",
    );
    assert_refused(&with(&["-r", "0"]), "--deadratio (-r): 0 is out of range");
    assert_refused(
        &with(&["-v", "0"]),
        "--vhid (-v): 0 is out of range 1..=255",
    );
    assert_refused(
        &with(&["-a", "1.2.3"]),
        "--addr (-a): \"1.2.3\" is not an IPv4 or IPv6 address",
    );
    assert_refused(
        &with(&["-s", "host"]),
        "--srcip (-s): \"host\" is not an IPv4 or IPv6 address",
    );
    assert_refused(
        &with(&["-m", "10.1.1.1"]),
        "--mcast (-m): 10.1.1.1 is not a multicast address",
    );
    assert_refused(
        &with(&["-p", "this-password-is-too-long"]),
        "--pass (-p): the password is 25 bytes long",
    );
    assert_refused(
        &with(&["-o", "/nonexistent/ucarp.pass"]),
        "--passfile (-o): cannot read /nonexistent/ucarp.pass",
    );
    assert_refused(
        &with(&["-f", "nosuch"]),
        "--facility (-f): unknown facility \"nosuch\"",
    );
    assert_refused(
        &with(&["-i", "nosuch0"]),
        "--interface (-i): no such interface \"nosuch0\"",
    );
}

/// Found by an outside audit: each was accepted, then failed at run time
/// (after `-B` had already exited 0), ate memory, hung, or ran a node whose
/// master could never take its address.
#[test]
fn audit_findings_are_refused_up_front() {
    assert_refused(
        &with(&["-s", "0.0.0.0", "-B"]),
        "--srcip (-s): 0.0.0.0 is the unspecified address",
    );
    assert_refused(
        &with(&["-b", "255", "-k", "255"]),
        "is the leave advertisement",
    );
    assert_refused(
        &with(&["-M", "-m", "10.0.0.255"]),
        "--mcast (-m): 10.0.0.255 is not a multicast address",
    );
    assert_refused(
        &with(&["-o", "/dev/zero"]),
        "--passfile (-o): /dev/zero is a device",
    );
    assert_refused(
        &with(&["-u", "/nonexistent/vip-up.sh"]),
        "--upscript (-u): /nonexistent/vip-up.sh: No such file or directory",
    );
    assert_refused(
        &with(&["--script-timeout", "0"]),
        "--script-timeout: 0 is out of range 1..=3600",
    );
}

#[test]
fn empty_passfile_is_refused() {
    let path = std::env::temp_dir().join(format!("ucarp-empty-pass-{}", std::process::id()));
    std::fs::write(&path, "").unwrap();
    assert_refused(
        &with(&["-o", path.to_str().unwrap()]),
        "the password is empty",
    );
    let _ = std::fs::remove_file(&path);
}

/// Every long and short option in --help is in docs/ucarp.8, and every
/// option the man page documents is in --help.
#[test]
fn man_page_matches_help() {
    let help = String::from_utf8(ucarp(&["--help"]).stdout).unwrap();
    let man_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ucarp.8");
    let man = std::fs::read_to_string(man_path)
        .unwrap()
        .replace("\\-", "-")
        .replace("\\fB", " ")
        .replace("\\fR", " ")
        .replace("\\fI", " ");
    let help_options = options_in(&help);
    let man_options = options_in(&man);
    assert!(help_options.len() >= 44, "{help_options:?}");
    for option in &help_options {
        assert!(
            man_options.contains(option),
            "{option} is in --help but not in ucarp.8"
        );
    }
    for option in &man_options {
        assert!(
            help_options.contains(option) || option == "--mcastip",
            "{option} is in ucarp.8 but not in --help"
        );
    }
}

/// The `--name` and `-x` tokens of a text.
fn options_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(long) = word.strip_prefix("--") {
            if long.len() > 1 && long.chars().all(|c| c.is_ascii_lowercase()) {
                found.insert(format!("--{long}"));
            }
        } else if let Some(short) = word.strip_prefix('-') {
            if short.len() == 1 && short.chars().all(|c| c.is_ascii_alphabetic()) {
                found.insert(format!("-{short}"));
            }
        }
    }
    found
}

/// `--check-config`: 0 and a summary for a good file, 1 and the place of
/// the first problem for a bad one; `--config` takes no per-vhost options.
#[test]
fn check_config_says_ok_or_where_the_problem_is() {
    let dir = std::env::temp_dir().join(format!("ucarp-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[defaults]\ninterface = \"lo\"\nsrcip = \"127.0.0.1\"\npassword = \"pw\"\n\
         [[vhost]]\nvhid = 1\naddresses = [\"10.0.0.1\"]\n\
         [[vhost]]\nvhid = 2\naddresses = [\"10.0.0.2\"]\n",
    )
    .unwrap();
    let path = good.to_str().unwrap();
    let output = ucarp(&["--check-config", path]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{path}: OK, 2 virtual hosts on lo\n")
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[vhost]]\ninterface = \"lo\"\nsrcip = \"127.0.0.1\"\npassword = \"pw\"\n\
         vhid = 300\naddresses = [\"10.0.0.1\"]\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    assert_refused(
        &ucarp(&["--check-config", bad]),
        &format!("ucarp: {bad}:5:8: vhid: 300 is out of range 1..=255"),
    );
    // The daemon refuses the same file the same way, before anything starts.
    assert_refused(
        &ucarp(&["--config", bad]),
        &format!("ucarp: {bad}:5:8: vhid: 300 is out of range 1..=255"),
    );
    assert_refused(
        &ucarp(&["--config", path, "-i", "lo", "-k", "5"]),
        "ucarp: --config: --interface (-i), --advskew (-k) belong in the configuration file (ucarp.toml(5)), not on the command line",
    );
    assert_refused(
        &ucarp(&["--config", path, "--check-config", path]),
        "ucarp: --config and --check-config: give one of them",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
