// Package kmsg parses records of the kernel log buffer as /dev/kmsg returns
// them (Documentation/ABI/testing/dev-kmsg) and turns them into lines.
//
// Facility 0 records were written by the kernel: a write to /dev/kmsg from
// userspace is stored with facility LOG_USER (1) unless the writer asks for
// another non-zero one, so facility 0 cannot be forged. Only those records
// may carry kernel signatures.
package kmsg
