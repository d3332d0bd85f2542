//! The `mempipe_demo` binary: the user's check and its flags.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mempipe_demo"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The user's check: `printf 'hello\nworld\n' | cargo run --bin mempipe_demo`.
#[test]
fn hello_world_exact_output() {
    let o = run(&[], "hello\nworld\n");
    assert!(o.status.success(), "{o:?}");
    let expected = "\
(r1): hell
(r1): o
(r2): hell
(r2): o
(r3): hell
(r3): o
(r1): worl
(r1): d
(r2): worl
(r2): d
(r3): worl
(r3): d
";
    assert_eq!(stdout(&o), expected);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn lines_are_stripped_and_an_empty_line_stops() {
    let o = run(
        &["--readers", "1", "--chunk", "3"],
        "  abcd \t\nxy\n\nnot written\n",
    );
    assert!(o.status.success());
    assert_eq!(stdout(&o), "(r1): abc\n(r1): d\n(r1): xy\n");
}

#[test]
fn no_input_prints_nothing() {
    let o = run(&["--readers", "2"], "");
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn help_exits_zero() {
    let o = run(&["--help"], "");
    assert!(o.status.success());
    assert!(stdout(&o).contains("--throughput"));
}

#[test]
fn bad_flags_are_usage_errors_with_code_2() {
    for args in [
        &["--bogus"][..],
        &["--readers"],
        &["--readers", "0"],
        &["--readers", "x"],
        &["--chunk", "-1"],
        &["--readers", "5000"],
        &["--bytes", "99999999999G"],
    ] {
        let o = run(args, "");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("usage:"));
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn throughput_mode_reports_every_reader() {
    for extra in [&[][..], &["--keep"]] {
        let mut args = vec!["--throughput", "--readers", "2", "--bytes", "1M"];
        args.extend_from_slice(extra);
        let o = run(&args, "");
        assert!(o.status.success(), "{o:?}");
        let out = stdout(&o);
        assert!(out.contains("(r1): 1048576 bytes"), "{out}");
        assert!(out.contains("(r2): 1048576 bytes"), "{out}");
        assert!(
            out.contains("aggregate: 2097152 bytes to 2 readers"),
            "{out}"
        );
    }
}
