;; A minimal waPC guest for testing the host side of context-aware calls: `validate` asks the host
;; for the Namespace `default` (kubewarden/kubernetes/get_resource) and accepts the request when
;; the host answers, rejects it when the host returns an error. `validate_settings` accepts
;; anything, `protocol_version` is "v1". Operations are told apart by name length.
(module
  (import "wapc" "__guest_request" (func $guest_request (param i32 i32)))
  (import "wapc" "__guest_response" (func $guest_response (param i32 i32)))
  (import "wapc" "__host_call"
    (func $host_call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "kubewarden")
  (data (i32.const 16) "kubernetes")
  (data (i32.const 32) "get_resource")
  (data (i32.const 64)
    "{\"api_version\":\"v1\",\"kind\":\"Namespace\",\"name\":\"default\",\"disable_cache\":false}")
  (data (i32.const 256) "{\"valid\":true}")
  (data (i32.const 288) "\"v1\"")
  (data (i32.const 320) "{\"accepted\":true}")
  (data (i32.const 352) "{\"accepted\":false,\"message\":\"the host could not answer\"}")
  (func (export "__guest_call") (param $op_len i32) (param $req_len i32) (result i32)
    (call $guest_request (i32.const 4096) (i32.const 8192))
    (if (i32.eq (local.get $op_len) (i32.const 17))
      (then (call $guest_response (i32.const 256) (i32.const 14)) (return (i32.const 1))))
    (if (i32.eq (local.get $op_len) (i32.const 16))
      (then (call $guest_response (i32.const 288) (i32.const 4)) (return (i32.const 1))))
    (if (call $host_call
          (i32.const 0) (i32.const 10) (i32.const 16) (i32.const 10)
          (i32.const 32) (i32.const 12) (i32.const 64) (i32.const 78))
      (then (call $guest_response (i32.const 320) (i32.const 17)))
      (else (call $guest_response (i32.const 352) (i32.const 56))))
    (i32.const 1)))
