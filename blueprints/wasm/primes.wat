;; primes: counts the primes in [LO, HI) and adds them up, by trial division by odd numbers.
;;
;; A WASI preview 1 command (it exports `_start` and imports only wasi_snapshot_preview1), so the
;; `wasmtime` runtime runs it as the entry point `main`:
;;
;;   main LO HI     prints "LO HI COUNT SUM\n" and exits 0
;;
;; with 0 <= LO <= HI <= 10^12. Anything else prints a usage line to stderr and exits 2.
;; Built by `python -m blueprints.wasm build DIR` (wasmtime's wat2wasm); the wasm_tasks blueprint
;; splits a range across tasks and checks the sums against a sieve run locally.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)

  ;; Memory map:
  ;;   0..8       iovec {ptr, len} for fd_write; 8..12 the number of bytes it wrote
  ;;   16, 20     argc and the size of the argument strings (args_sizes_get)
  ;;   64..96     digits of a number being formatted, written backwards from 96
  ;;   256..320   argv pointers (args_get; argc is checked to be 3 first)
  ;;   512..1024  argument strings (their size is checked first)
  ;;   1024..2048 messages
  ;;   2048..     the output line
  (data (i32.const 1024) "usage: main LO HI, with 0 <= LO <= HI <= 1000000000000\n\00")

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Write all of [p, p + n) to fd.
  (func $write (param $fd i32) (param $p i32) (param $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store (i32.const 0) (local.get $p))
        (i32.store (i32.const 4) (local.get $n))
        (br_if $done (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $p (i32.add (local.get $p) (i32.load (i32.const 8))))
        (local.set $n (i32.sub (local.get $n) (i32.load (i32.const 8))))
        (br $more))))

  (func $usage
    (call $write (i32.const 2) (i32.const 1024) (call $strlen (i32.const 1024)))
    (call $proc_exit (i32.const 2)))

  ;; The number written in decimal at p (NUL-terminated), or -1 unless it is 1 to 13 digits.
  (func $parse (param $p i32) (result i64)
    (local $v i64) (local $c i32) (local $n i32)
    (block $done
      (loop $next
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.eqz (local.get $c)))
        (local.set $c (i32.sub (local.get $c) (i32.const 48)))
        (if (i32.gt_u (local.get $c) (i32.const 9)) (then (return (i64.const -1))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (if (i32.gt_u (local.get $n) (i32.const 13)) (then (return (i64.const -1))))
        (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $c))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (if (result i64) (local.get $n) (then (local.get $v)) (else (i64.const -1))))

  ;; Write v in decimal at dst, then the byte `sep`; the address after it.
  (func $format (param $v i64) (param $dst i32) (param $sep i32) (result i32)
    (local $p i32) (local $len i32)
    (local.set $p (i32.const 96))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (local.set $len (i32.sub (i32.const 96) (local.get $p)))
    (memory.copy (local.get $dst) (local.get $p) (local.get $len))
    (i32.store8 (i32.add (local.get $dst) (local.get $len)) (local.get $sep))
    (i32.add (i32.add (local.get $dst) (local.get $len)) (i32.const 1)))

  (func $is_prime (param $n i64) (result i32)
    (local $d i64)
    (if (i64.lt_u (local.get $n) (i64.const 2)) (then (return (i32.const 0))))
    (if (i64.lt_u (local.get $n) (i64.const 4)) (then (return (i32.const 1))))
    (if (i64.eqz (i64.and (local.get $n) (i64.const 1))) (then (return (i32.const 0))))
    (local.set $d (i64.const 3))
    (block $prime
      (loop $next
        (br_if $prime (i64.gt_u (i64.mul (local.get $d) (local.get $d)) (local.get $n)))
        (if (i64.eqz (i64.rem_u (local.get $n) (local.get $d))) (then (return (i32.const 0))))
        (local.set $d (i64.add (local.get $d) (i64.const 2)))
        (br $next)))
    (i32.const 1))

  (func (export "_start")
    (local $lo i64) (local $hi i64) (local $n i64) (local $count i64) (local $sum i64) (local $end i32)
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (if (i32.or (i32.ne (i32.load (i32.const 16)) (i32.const 3))
                (i32.gt_u (i32.load (i32.const 20)) (i32.const 512)))
      (then (call $usage)))
    (drop (call $args_get (i32.const 256) (i32.const 512)))
    (local.set $lo (call $parse (i32.load (i32.const 260))))
    (local.set $hi (call $parse (i32.load (i32.const 264))))
    (if (i32.or (i32.or (i64.lt_s (local.get $lo) (i64.const 0))
                        (i64.lt_s (local.get $hi) (i64.const 0)))
                (i32.or (i64.gt_u (local.get $lo) (local.get $hi))
                        (i64.gt_u (local.get $hi) (i64.const 1000000000000))))
      (then (call $usage)))
    (local.set $n (local.get $lo))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $n) (local.get $hi)))
        (if (call $is_prime (local.get $n))
          (then
            (local.set $count (i64.add (local.get $count) (i64.const 1)))
            (local.set $sum (i64.add (local.get $sum) (local.get $n)))))
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        (br $next)))
    (local.set $end (call $format (local.get $lo) (i32.const 2048) (i32.const 32)))
    (local.set $end (call $format (local.get $hi) (local.get $end) (i32.const 32)))
    (local.set $end (call $format (local.get $count) (local.get $end) (i32.const 32)))
    (local.set $end (call $format (local.get $sum) (local.get $end) (i32.const 10)))
    (call $write (i32.const 1) (i32.const 2048) (i32.sub (local.get $end) (i32.const 2048)))))
