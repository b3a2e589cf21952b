// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not a program: an object whose BTF describes every type of events.h, for
 * the contract test (sync-trace-ebpf/tests/contract.rs). clang writes BTF only
 * for the types a program object uses in its maps, globals or function
 * signatures, so the programs' own objects lack most of events.h (st_event
 * and the enums); this object names them all, compiled by build.rs with the
 * programs' exact flags. It is never embedded nor loaded, so the programs are
 * unchanged.
 *
 * Every struct and enum of events.h must have a member here; the test fails
 * on a type it expects and does not find.
 */
#include "events.h"

/* Members by value: clang may describe a struct reached only through a
 * pointer as a forward declaration, without its members. */
struct st_contract {
	struct st_event event;
	struct st_diag diag;
	struct st_inflight_key inflight_key;
	struct st_inflight inflight;
	struct st_scan scan;
	struct st_sweep_view sweep_view;
	struct st_sweep_change sweep_change;
	struct st_batch batch;
	struct st_batch_slot batch_slot;
	enum st_inflight_flag inflight_flag;
	enum st_batch_reason batch_reason;
	enum st_target target;
	enum st_kind kind;
	enum st_diag_code diag_code;
	enum st_method method;
	enum st_flag flag;
	enum st_lost lost;
	enum st_event_len event_len;
	enum st_scan_key scan_key;
	enum st_pgtable pgtable;
	enum st_scan_mode scan_mode;
	enum st_scan_status scan_status;
	enum st_core core;
};

__attribute__((used)) const struct st_contract st_contract;
