;; CAM-OS built-in authorization policy, a module implementing OPA's WebAssembly ABI 1.2
;; (https://www.openpolicyagent.org/docs/latest/wasm/): the same evaluation path (@open-policy-agent/opa-wasm)
;; serves it and any policy.wasm an operator installs.
;;
;; One entrypoint, "cam/authz" (0). The rule table is the policy's data (data.json): {"rules":[[effect, mode,
;; role, caller, group, syscall, reason], ...]}; patterns are "*" (anything), "prefix*" or an exact string.
;; The first rule whose five patterns match input.mode, input.role, input.caller, input.group and
;; input.syscall decides; no match is a deny. The result set is [{"result":{"allow":<bool>,"rule":<index>}}]
;; (rule -1 = no rule matched). The host serializes data and input itself (compact JSON, no escapes in the
;; matched fields), which is what lets this module read fields by their key rather than parse all of JSON.
(module
  (import "env" "memory" (memory 2))
  (import "env" "opa_abort" (func $abort (param i32)))

  (global $heap (mut i32) (i32.const 4096))
  (global $sl (mut i32) (i32.const 0))
  (global (export "opa_wasm_abi_version") i32 (i32.const 1))
  (global (export "opa_wasm_abi_minor_version") i32 (i32.const 2))

  (data (i32.const 16) "{}")
  (data (i32.const 32) "{\"cam/authz\":0}")
  (data (i32.const 64) "\"rules\":[")
  (data (i32.const 80) "\"mode\":\"")
  (data (i32.const 96) "\"role\":\"")
  (data (i32.const 112) "\"caller\":\"")
  (data (i32.const 128) "\"group\":\"")
  (data (i32.const 144) "\"syscall\":\"")
  (data (i32.const 160) "[{\"result\":{\"allow\":true,\"rule\":")
  (data (i32.const 208) "[{\"result\":{\"allow\":false,\"rule\":")
  (data (i32.const 256) "}}]")
  (data (i32.const 272) "malformed rule table in data\00")
  (data (i32.const 320) "[]")
  ;; static value headers: (ptr, len)
  (data (i32.const 512) "\10\00\00\00\02\00\00\00")
  (data (i32.const 520) "\20\00\00\00\0f\00\00\00")
  (data (i32.const 528) "\40\01\00\00\02\00\00\00")

  (func $malloc (export "opa_malloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16)))
              (i32.const 0))
          (then (unreachable)))))
    (global.set $heap (local.get $end))
    (local.get $p))

  (func (export "opa_free") (param i32))
  (func (export "opa_heap_ptr_get") (result i32) (global.get $heap))
  (func (export "opa_heap_ptr_set") (param $p i32) (global.set $heap (local.get $p)))

  ;; A value is a header (ptr, len) over JSON text. Parsing checks the first character is one JSON can start with.
  (func $parse (export "opa_json_parse") (param $p i32) (param $n i32) (result i32)
    (local $h i32) (local $c i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.eqz
          (i32.or (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
            (i32.or (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 110)))
              (i32.or (i32.or (i32.eq (local.get $c) (i32.const 116)) (i32.eq (local.get $c) (i32.const 102)))
                (i32.or (i32.eq (local.get $c) (i32.const 45))
                  (i32.lt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 10)))))))
      (then (return (i32.const 0))))
    (local.set $h (call $malloc (i32.const 8)))
    (i32.store (local.get $h) (local.get $p))
    (i32.store offset=4 (local.get $h) (local.get $n))
    (local.get $h))
  (func (export "opa_value_parse") (param i32 i32) (result i32) (call $parse (local.get 0) (local.get 1)))

  (func (export "opa_json_dump") (param $h i32) (result i32)
    (local $n i32) (local $d i32)
    (local.set $n (i32.load offset=4 (local.get $h)))
    (local.set $d (call $malloc (i32.add (local.get $n) (i32.const 1))))
    (memory.copy (local.get $d) (i32.load (local.get $h)) (local.get $n))
    (i32.store8 (i32.add (local.get $d) (local.get $n)) (i32.const 0))
    (local.get $d))

  (func (export "builtins") (result i32) (i32.const 512))
  (func (export "entrypoints") (result i32) (i32.const 520))

  ;; Byte-equal ranges.
  (func $eq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $no
      (loop $l
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (i32.const 0))

  ;; Position just after the first occurrence of the needle in [p, p+n), or -1.
  (func $find (param $p i32) (param $n i32) (param $needle i32) (param $k i32) (result i32)
    (local $i i32) (local $last i32)
    (if (i32.lt_s (local.get $n) (local.get $k)) (then (return (i32.const -1))))
    (local.set $last (i32.add (local.get $p) (i32.sub (local.get $n) (local.get $k))))
    (local.set $i (local.get $p))
    (block $done
      (loop $l
        (br_if $done (i32.gt_u (local.get $i) (local.get $last)))
        (if (call $eq (local.get $i) (local.get $needle) (local.get $k))
          (then (return (i32.add (local.get $i) (local.get $k)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.const -1))

  ;; Index of the next '"' at or after p, before end (or end).
  (func $quote (param $p i32) (param $end i32) (result i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (br_if $done (i32.eq (i32.load8_u (local.get $p)) (i32.const 34)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l)))
    (local.get $p))

  ;; Store input field (ptr, len) at slot; absent = empty string.
  (func $field (param $in i32) (param $n i32) (param $needle i32) (param $k i32) (param $slot i32)
    (local $s i32) (local $e i32)
    (local.set $s (call $find (local.get $in) (local.get $n) (local.get $needle) (local.get $k)))
    (if (i32.lt_s (local.get $s) (i32.const 0))
      (then
        (i32.store (local.get $slot) (i32.const 0))
        (i32.store offset=4 (local.get $slot) (i32.const 0))
        (return)))
    (local.set $e (call $quote (local.get $s) (i32.add (local.get $in) (local.get $n))))
    (i32.store (local.get $slot) (local.get $s))
    (i32.store offset=4 (local.get $slot) (i32.sub (local.get $e) (local.get $s))))

  ;; Glob: "*" matches anything, "abc*" matches a prefix, anything else matches exactly.
  (func $glob (param $p i32) (param $pn i32) (param $v i32) (param $vn i32) (result i32)
    (if (i32.and (i32.eq (local.get $pn) (i32.const 1)) (i32.eq (i32.load8_u (local.get $p)) (i32.const 42)))
      (then (return (i32.const 1))))
    (if (i32.and (i32.gt_u (local.get $pn) (i32.const 0))
          (i32.eq (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $pn) (i32.const 1)))) (i32.const 42)))
      (then
        (if (i32.gt_u (i32.sub (local.get $pn) (i32.const 1)) (local.get $vn)) (then (return (i32.const 0))))
        (return (call $eq (local.get $p) (local.get $v) (i32.sub (local.get $pn) (i32.const 1))))))
    (if (i32.ne (local.get $pn) (local.get $vn)) (then (return (i32.const 0))))
    (call $eq (local.get $p) (local.get $v) (local.get $pn)))

  (func $skipsep (param $p i32) (param $end i32) (result i32)
    (local $c i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.eqz (i32.or (i32.or (i32.eq (local.get $c) (i32.const 44)) (i32.eq (local.get $c) (i32.const 32)))
                                      (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 9))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l)))
    (local.get $p))

  ;; Write the result set at the heap; returns its address (NUL-terminated).
  (func $result (param $allow i32) (param $rule i32) (result i32)
    (local $out i32) (local $w i32) (local $digits i32) (local $v i32) (local $tmp i32)
    (local.set $out (call $malloc (i32.const 64)))
    (if (local.get $allow)
      (then (memory.copy (local.get $out) (i32.const 160) (i32.const 32))
            (local.set $w (i32.add (local.get $out) (i32.const 32))))
      (else (memory.copy (local.get $out) (i32.const 208) (i32.const 33))
            (local.set $w (i32.add (local.get $out) (i32.const 33)))))
    (local.set $v (local.get $rule))
    (if (i32.lt_s (local.get $v) (i32.const 0))
      (then (i32.store8 (local.get $w) (i32.const 45))
            (local.set $w (i32.add (local.get $w) (i32.const 1)))
            (local.set $v (i32.sub (i32.const 0) (local.get $v)))))
    ;; digits, most significant first
    (local.set $tmp (local.get $v))
    (local.set $digits (i32.const 1))
    (block $d (loop $l
      (br_if $d (i32.lt_u (local.get $tmp) (i32.const 10)))
      (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
      (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
      (br $l)))
    (local.set $tmp (i32.add (local.get $w) (local.get $digits)))
    (loop $l
      (local.set $tmp (i32.sub (local.get $tmp) (i32.const 1)))
      (i32.store8 (local.get $tmp) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $l (i32.gt_u (local.get $tmp) (local.get $w))))
    (local.set $w (i32.add (local.get $w) (local.get $digits)))
    (memory.copy (local.get $w) (i32.const 256) (i32.const 3))
    (i32.store8 (i32.add (local.get $w) (i32.const 3)) (i32.const 0))
    (local.get $out))

  (func (export "opa_eval") (param $reserved i32) (param $ep i32) (param $data i32) (param $in i32) (param $inlen i32)
        (param $heapptr i32) (param $format i32) (result i32)
    (local $dp i32) (local $end i32) (local $pos i32) (local $idx i32) (local $k i32) (local $s i32) (local $e i32)
    (local $matched i32) (local $eff i32) (local $slot i32) (local $out i32)
    (global.set $heap (local.get $heapptr))
    (if (i32.ne (local.get $ep) (i32.const 0))
      (then
        (local.set $out (call $malloc (i32.const 3)))
        (memory.copy (local.get $out) (i32.const 320) (i32.const 2))
        (i32.store8 (i32.add (local.get $out) (i32.const 2)) (i32.const 0))
        (return (local.get $out))))
    ;; input fields -> slots at 1024 + 8k
    (call $field (local.get $in) (local.get $inlen) (i32.const 80) (i32.const 8) (i32.const 1024))
    (call $field (local.get $in) (local.get $inlen) (i32.const 96) (i32.const 8) (i32.const 1032))
    (call $field (local.get $in) (local.get $inlen) (i32.const 112) (i32.const 10) (i32.const 1040))
    (call $field (local.get $in) (local.get $inlen) (i32.const 128) (i32.const 9) (i32.const 1048))
    (call $field (local.get $in) (local.get $inlen) (i32.const 144) (i32.const 11) (i32.const 1056))
    (local.set $dp (i32.load (local.get $data)))
    (local.set $end (i32.add (local.get $dp) (i32.load offset=4 (local.get $data))))
    (local.set $pos (call $find (local.get $dp) (i32.load offset=4 (local.get $data)) (i32.const 64) (i32.const 9)))
    (if (i32.lt_s (local.get $pos) (i32.const 0)) (then (return (call $result (i32.const 0) (i32.const -1)))))
    (local.set $idx (i32.const 0))
    (block $rules_done
      (loop $rules
        (local.set $pos (call $skipsep (local.get $pos) (local.get $end)))
        (br_if $rules_done (i32.ge_u (local.get $pos) (local.get $end)))
        (br_if $rules_done (i32.ne (i32.load8_u (local.get $pos)) (i32.const 91)))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (local.set $matched (i32.const 1))
        (local.set $k (i32.const 0))
        (loop $strs
          (local.set $pos (call $skipsep (local.get $pos) (local.get $end)))
          (if (i32.or (i32.ge_u (local.get $pos) (local.get $end))
                      (i32.ne (i32.load8_u (local.get $pos)) (i32.const 34)))
            (then (call $abort (i32.const 272)) (unreachable)))
          (local.set $s (i32.add (local.get $pos) (i32.const 1)))
          (local.set $e (call $quote (local.get $s) (local.get $end)))
          (if (i32.ge_u (local.get $e) (local.get $end)) (then (call $abort (i32.const 272)) (unreachable)))
          (if (i32.eqz (local.get $k)) (then (local.set $eff (i32.load8_u (local.get $s)))))
          (if (i32.and (i32.ge_u (local.get $k) (i32.const 1)) (i32.le_u (local.get $k) (i32.const 5)))
            (then
              (local.set $slot (i32.add (i32.const 1016) (i32.shl (local.get $k) (i32.const 3))))
              (if (i32.eqz (call $glob (local.get $s) (i32.sub (local.get $e) (local.get $s))
                                       (i32.load (local.get $slot)) (i32.load offset=4 (local.get $slot))))
                (then (local.set $matched (i32.const 0))))))
          (local.set $pos (i32.add (local.get $e) (i32.const 1)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br_if $strs (i32.lt_u (local.get $k) (i32.const 7))))
        (local.set $pos (call $skipsep (local.get $pos) (local.get $end)))
        (if (i32.or (i32.ge_u (local.get $pos) (local.get $end))
                    (i32.ne (i32.load8_u (local.get $pos)) (i32.const 93)))
          (then (call $abort (i32.const 272)) (unreachable)))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (if (local.get $matched)
          (then (return (call $result (i32.eq (local.get $eff) (i32.const 97)) (local.get $idx)))))
        (local.set $idx (i32.add (local.get $idx) (i32.const 1)))
        (br $rules)))
    (call $result (i32.const 0) (i32.const -1)))
)
