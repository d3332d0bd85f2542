//! The `mempipe_demo` binary: the user's check and its flags.

// The binary needs `std` (`required-features` in Cargo.toml).
#![cfg(feature = "std")]

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

/// A person typing sees each line's chunks before typing the next line:
/// the demo answers one line while stdin is still open, and the next line
/// is only sent once that answer has been read back.
#[test]
fn each_line_is_echoed_before_the_next_is_typed() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mempipe_demo"))
        .args(["--readers", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for (typed, expected) in [
        (
            "hello\n",
            ["(r1): hell", "(r1): o", "(r2): hell", "(r2): o"],
        ),
        (
            "world\n",
            ["(r1): worl", "(r1): d", "(r2): worl", "(r2): d"],
        ),
    ] {
        stdin.write_all(typed.as_bytes()).unwrap();
        stdin.flush().unwrap();
        for want in expected {
            line.clear();
            // Blocks until the demo prints: stdin stays open meanwhile.
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim_end(), want);
        }
    }
    drop(stdin);
    line.clear();
    assert_eq!(out.read_line(&mut line).unwrap(), 0, "{line:?}");
    assert!(child.wait().unwrap().success());
}

/// Many lines piped at once (read in large batches) print exactly what
/// line-by-line lockstep printed: every line's chunks, reader by reader.
#[test]
fn a_large_piped_input_prints_every_line_in_lockstep_order() {
    let words = ["hello", "  spaced out ", "x", "abcdefghijklm", "caf\u{e9}"];
    let mut input = String::new();
    let mut expected = String::new();
    for i in 0..5000 {
        let w = words[i % words.len()];
        input.push_str(w);
        input.push('\n');
        let t = w.trim().as_bytes();
        for r in 1..=3 {
            for piece in t.chunks(4) {
                expected.push_str(&format!("(r{r}): {}\n", String::from_utf8_lossy(piece)));
            }
        }
    }
    let o = run(&[], &input);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), expected);
}
