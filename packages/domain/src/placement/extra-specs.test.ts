import { describe, expect, it } from "vitest";
import { boolFromString, matchesSpec, pythonFloat } from "./extra-specs.js";

type Case = [value: unknown, requirement: string | null, matches: boolean];

const check = (cases: Case[]) => {
  for (const [value, requirement, matches] of cases) {
    expect({ value, requirement, matches: matchesSpec(value, requirement) }).toEqual({ value, requirement, matches });
  }
};

// The cases of Cinder's ExtraSpecsOpsTestCase (cinder/tests/unit/scheduler/test_host_filters.py), then ours.
describe("matchesSpec, Cinder's cases", () => {
  it("treats an unknown operator as part of a plain string (test_extra_specs_fails_with_bogus_ops)", () => {
    check([["4", "> 2", false]]);
  });

  it("compares plain strings (test_extra_specs_matches_simple)", () => {
    check([
      ["1", "1", true],
      ["", "1", false],
      ["3", "1", false],
      ["222", "2", false],
    ]);
  });

  it("reads = as at least (test_extra_specs_matches_with_op_eq)", () => {
    check([
      ["123", "= 123", true],
      ["124", "= 123", true],
      ["34", "= 234", false],
      ["34", "=", false],
    ]);
  });

  it("compares numbers with <= and >= (test_extra_specs_matches_with_op_not_eq)", () => {
    check([
      ["2", "<= 10", true],
      ["3", "<= 2", false],
      ["3", ">= 1", true],
      ["2", ">= 3", false],
    ]);
  });

  it("compares strings with s== and s!= (test_extra_specs_matches_with_op_seq)", () => {
    check([
      ["123", "s== 123", true],
      ["1234", "s== 123", false],
      ["1234", "s!= 123", true],
      ["123", "s!= 123", false],
    ]);
  });

  it("orders strings, not numbers, with s< s<= s> s>= (test_extra_specs_fails_with_op_not_seq)", () => {
    check([
      ["1000", "s>= 234", false],
      ["1234", "s<= 1000", false],
      ["2", "s< 12", false],
      ["12", "s> 2", false],
    ]);
  });

  it("finds substrings with <in> (test_extra_specs_matches_with_op_in)", () => {
    check([
      ["12311321", "<in> 11", true],
      ["12311321", "<in> 12311321", true],
      ["12311321", "<in> 12311321 <in>", true],
      ["12310321", "<in> 11", false],
      ["12310321", "<in> 11 <in>", false],
    ]);
  });

  it("compares booleans with <is> (test_extra_specs_matches_with_op_is)", () => {
    check([
      [true, "<is> True", true],
      [false, "<is> False", true],
      [false, "<is> Nonsense", true],
      [true, "<is> False", false],
      [false, "<is> True", false],
    ]);
  });

  it("takes any of the <or> choices (test_extra_specs_matches_with_op_or)", () => {
    check([
      ["12", "<or> 11 <or> 12", true],
      ["12", "<or> 11 <or> 12 <or>", true],
      ["13", "<or> 11 <or> 12", false],
      ["13", "<or> 11 <or> 12 <or>", false],
    ]);
  });

  it("matches a missing requirement only to a missing value (test_extra_specs_matches_none_req)", () => {
    check([
      [null, null, true],
      ["foo", null, false],
    ]);
  });
});

describe("matchesSpec, beyond Cinder's cases", () => {
  it("reads <is> case-insensitively, on what drivers report (JSON booleans) and on strings", () => {
    check([
      [true, "<is> true", true],
      [true, "<is> TRUE", true],
      [false, "<is> false", true],
      ["True", "<is> True", true],
      ["yes", "<is> True", true],
      [1, "<is> True", true],
      ["off", "<is> True", false],
      [true, "<is>", false],
    ]);
  });

  it("does not match a boolean to the plain string True (Cinder: True == 'True' is false)", () => {
    check([
      [true, "True", false],
      [20, "20", false],
      ["lvm-fast", "lvm-fast", true],
    ]);
  });

  it("compares numbers with == and != (numbers and numeric strings alike)", () => {
    check([
      [20, "== 20", true],
      ["20.0", "== 20", true],
      [20.5, "== 20", false],
      [20, "!= 20", false],
      [21, "!= 20", true],
      [10, ">= 2", true],
      [10, "= 11", false],
      [0.5, "<= 0.5", true],
    ]);
  });

  it("does not compare what is no number (Python's float() would raise)", () => {
    check([
      ["abc", ">= 1", false],
      ["", "<= 1", false],
      [10, ">= abc", false],
      [null, ">= 1", false],
      [["1"], ">= 1", false],
      ["0x10", ">= 1", false],
    ]);
  });

  it("orders strings with s< s<= s> s>=", () => {
    check([
      ["abc", "s< abd", true],
      ["abd", "s< abd", false],
      ["abd", "s<= abd", true],
      ["b", "s> abc", true],
      ["abc", "s>= abc", true],
      ["abb", "s>= abc", false],
      [5, "s< 6", false],
    ]);
  });

  it("never equals a number to a string with s== (and so s!= holds)", () => {
    check([
      [5, "s== 5", false],
      [5, "s!= 5", true],
    ]);
  });

  it("takes < and > as no operators (as Cinder)", () => {
    check([
      ["1", "< 2", false],
      ["< 2", "< 2", true],
      ["3", "> 2", false],
    ]);
  });

  it("needs every word in the value with <all-in> (Nova's operator)", () => {
    check([
      [["aes", "sse4", "avx"], "<all-in> aes avx", true],
      [["aes", "sse4"], "<all-in> aes avx", false],
      ["iSCSI,FC", "<all-in> FC iSCSI", true],
      ["iSCSI", "<all-in> FC iSCSI", false],
      [["aes"], "<all-in>", false],
    ]);
  });

  it("takes the <or> choices as whole strings", () => {
    check([
      ["ceph", "<or> ceph <or> iSCSI", true],
      ["iSCSI", "<or> ceph <or> iSCSI", true],
      ["NFS", "<or> ceph <or> iSCSI", false],
      ["ce", "<or> ceph", false],
      [undefined, "<or> ceph", false],
      ["ceph", "<or>", false],
    ]);
  });

  it("reads the operand after any amount of whitespace", () => {
    check([
      ["7", "  >=   5 ", true],
      [true, "<is>\tTrue", true],
    ]);
  });
});

describe("pythonFloat and boolFromString", () => {
  it("read numbers as Python's float() and bool_from_string do", () => {
    expect([" 12 ", "1e3", "-.5", "inf", "-Infinity", "", "1,5", "0x1"].map(pythonFloat)).toEqual([
      12,
      1000,
      -0.5,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      undefined,
      undefined,
      undefined,
    ]);
    expect(pythonFloat(true)).toBe(1);
    expect(["1", "t", "True", " yes ", "on", "Y", "0", "false", "nonsense", ""].map(boolFromString)).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
  });
});
