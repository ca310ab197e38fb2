"""The course's command line: `python -m course {build-exercises,grade,grade-one,student-bundle,bench,train,sample,capstone}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_exercises(args) -> int:
    from course.authoring import exercises

    wanted = args.names or exercises.names()
    unknown = sorted(set(wanted) - set(exercises.names()))
    if unknown:
        print(f"unknown exercise(s): {', '.join(unknown)}; known: {', '.join(exercises.names())}")
        return 2
    for name in wanted:
        changed = exercises.build(name)
        state = "updated " + ", ".join(str(p.relative_to(exercises.ROOT)) for p in changed) \
            if changed else "up to date"
        print(f"{name}: {state}")
    return 0


def grade(args) -> int:
    from course.grading import grade as grading
    from course.grading.results import summary
    from course.grading.sandbox import Cgroup, Limits, SandboxMissing

    if args.merge:
        if not args.out:
            print("error: --merge needs --out (the class folder)", file=sys.stderr)
            return 2
        try:
            merged = grading.merge([Path(p) for p in args.merge], Path(args.out))
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"Merged {len(merged)} result(s) into {args.out}")
        return 0
    if not args.submissions or not args.assignment:
        print("error: grade needs SUBMISSIONS and --assignment (or --merge)", file=sys.stderr)
        return 2
    out = Path(args.out or f"grading/{args.assignment}")
    limits = Limits(memory_gb=args.memory_gb, processes=args.processes)
    cgroup = Cgroup(limits)
    cgroup.close()
    print(f"Grading {args.submissions} ({args.assignment}) into {out} ...")
    print(f"Limits per submission: {limits.describe(cgroup.path is not None)}; "
          f"{args.timeout:g} s")
    try:
        if args.assignment == "all":
            every = grading.grade_all(Path(args.submissions), out, jobs=args.jobs,
                                      timeout=args.timeout, limits=limits,
                                      sandboxed=not args.unsandboxed)
            for name, results in every.items():
                print(f"\n{name}\n{summary(results)}")
            print(f"\nScores of every assignment (nbgrader's export layout): "
                  f"{out / 'grades.csv'}\nEach assignment's class folder: {out}/<assignment>/")
            return 0
        results = grading.grade_class(Path(args.submissions), args.assignment, out,
                                      jobs=args.jobs, timeout=args.timeout, limits=limits,
                                      sandboxed=not args.unsandboxed)
    except (FileNotFoundError, SandboxMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except grading.GradingBroken as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    print()
    print(summary(results))
    failed = sum(not r.status.startswith("graded") for r in results)
    if failed:
        print(f"\n{failed} submission(s) could not be graded: see their status (no score).")
    print(f"\nGradebook: {out / 'gradebook.db'}\nScores:    {out / 'grades.csv'}\n"
          f"Feedback:  {out / 'feedback'}/<student>/{args.assignment}.html")
    return 0


def grade_one(args) -> int:
    import json

    from course.grading import grade as grading
    from course.grading.sandbox import Limits, SandboxMissing

    out = Path(args.out or f"grading/{args.assignment}")
    try:
        entry = grading.grade_single(Path(args.notebook), args.assignment, out,
                                     student=args.student, timeout=args.timeout,
                                     limits=Limits(memory_gb=args.memory_gb,
                                                   processes=args.processes),
                                     sandboxed=not args.unsandboxed)
    except (FileNotFoundError, SandboxMissing, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except grading.GradingBroken as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    text = json.dumps(entry, ensure_ascii=False, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    return 0


def bench(args) -> int:
    from course.bench import BENCHES, report, unavailable

    names = args.names or sorted(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(BENCHES))}")
        return 2
    missing = {name: reason for name in names if (reason := unavailable(name))}
    if args.names and missing:                            # asked for by name: refuse
        print(f"error: {'; '.join(missing.values())}", file=sys.stderr)
        return 2
    for name in names:
        print(f"== {name}")
        print(f"skipped: {missing[name]}" if name in missing
              else report(BENCHES[name](quick=args.quick)))
    return 0


def student_bundle(args) -> int:
    from course.authoring import bundle

    out = Path(args.out)
    if out.suffix != ".zip":
        print(f"error: the bundle is a .zip file, got {out}", file=sys.stderr)
        return 2
    try:
        given = bundle.build(out, args.assignment)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {out}: {', '.join(given)}, with their visible tests and no hidden cases; "
          "no body any exercise asks for is in it.")
    print("\n".join(bundle.summary(given)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-exercises", help="templates + solutions -> source and release notebooks")
    p.add_argument("names", nargs="*", help="exercise names such as 01_tokenization (default: all)")
    p.set_defaults(run=build_exercises)

    p = sub.add_parser("grade", help="autograde a class's submissions, each in its own sandbox")
    p.add_argument("submissions", nargs="?",
                   help="folder SUBMISSIONS/<student>/<assignment>.ipynb, or a .zip")
    p.add_argument("--assignment", help="e.g. 01_tokenization, or all (every exercise the "
                                        "submissions hold, one CSV across them)")
    p.add_argument("--merge", nargs="+", metavar="RESULT",
                   help="fold grade-one JSON results into the class folder --out instead")
    p.add_argument("--out", help="class folder for gradebook.db, grades.csv, feedback/ "
                                 "(default: grading/<assignment>)")
    p.add_argument("--jobs", type=int, default=2, help="submissions graded in parallel")
    p.add_argument("--timeout", type=float, default=600, help="seconds per submission")
    p.add_argument("--memory-gb", type=float, default=4,
                   help="memory for the whole submission (all its processes)")
    p.add_argument("--processes", type=int, default=64,
                   help="processes and threads one submission may start")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade without bubblewrap (only for code you trust)")
    p.set_defaults(run=grade)

    p = sub.add_parser("grade-one", help="grade one notebook alone (for a cluster scheduler); "
                                         "fold the results in with grade --merge")
    p.add_argument("notebook", help="the submitted notebook")
    p.add_argument("--assignment", required=True, help="e.g. 01_tokenization")
    p.add_argument("--student", help="default: from the file or folder name")
    p.add_argument("--out", help="where its feedback goes (default: grading/<assignment>)")
    p.add_argument("--json", metavar="FILE", help="write the result here (default: stdout)")
    p.add_argument("--timeout", type=float, default=600, help="seconds")
    p.add_argument("--memory-gb", type=float, default=4, help="memory, all processes")
    p.add_argument("--processes", type=int, default=64, help="processes and threads")
    p.add_argument("--unsandboxed", action="store_true", help="only for code you trust")
    p.set_defaults(run=grade_one)

    p = sub.add_parser("student-bundle", help="release notebooks + what their visible tests "
                                              "need, without answers or hidden cases")
    p.add_argument("out", help="the zip to write, e.g. bundle.zip")
    p.add_argument("--assignment", action="append", metavar="NAME",
                   help="an exercise to bundle (repeat for several; default: all)")
    p.set_defaults(run=student_bundle)

    p = sub.add_parser("bench", help="benchmarks, reported as ratios against a baseline")
    p.add_argument("names", nargs="*", help="e.g. tokenization attention (default: all; "
                                            "gpu needs CUDA)")
    p.add_argument("--quick", action="store_true", help="small inputs (a smoke test)")
    p.set_defaults(run=bench)

    from course.capstone import run as capstone
    from course.cli import train as train_cli  # train, sample

    train_cli.add_parsers(sub)
    capstone.add_parser(sub)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
