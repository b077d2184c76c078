package twistedpic

/*
#include "twistedpic/tp.h"
*/
import "C"

import "errors"

// Code is a tp_code: the kind of an error. Values are fixed forever.
type Code int32

// The codes of tp.h.
const (
	OK                 Code = C.TP_OK
	Cancelled          Code = C.TP_CANCELLED
	Unknown            Code = C.TP_UNKNOWN
	InvalidArgument    Code = C.TP_INVALID_ARGUMENT
	NotFound           Code = C.TP_NOT_FOUND
	AlreadyExists      Code = C.TP_ALREADY_EXISTS
	ResourceExhausted  Code = C.TP_RESOURCE_EXHAUSTED
	FailedPrecondition Code = C.TP_FAILED_PRECONDITION
	Aborted            Code = C.TP_ABORTED
	Unimplemented      Code = C.TP_UNIMPLEMENTED
	Internal           Code = C.TP_INTERNAL
	Unavailable        Code = C.TP_UNAVAILABLE
	DataLoss           Code = C.TP_DATA_LOSS
)

// String returns the code's stable name ("NOT_FOUND").
func (c Code) String() string { return codeName(c) }

// Error is every error this package returns.
type Error struct {
	Code    Code
	Message string // UTF-8, from the library; names the model, file or field at fault
	cause   error  // the context's error, for a Generate its context cancelled
}

func (e *Error) Error() string {
	s := "twistedpic: " + e.Code.String() + ": " + e.Message
	if e.cause != nil {
		s += " (" + e.cause.Error() + ")"
	}
	return s
}

// Unwrap returns the context's error (context.Canceled or
// context.DeadlineExceeded) when a context ended the call, else nil: so
// errors.Is(err, context.Canceled) holds while CodeOf(err) is Cancelled.
func (e *Error) Unwrap() error { return e.cause }

// CodeOf returns err's Code: OK for nil, Unknown for an error not from this package.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return OK
	case errors.As(err, &e):
		return e.Code
	default:
		return Unknown
	}
}

// IsNotFound reports an unknown model or a missing config file.
func IsNotFound(err error) bool { return CodeOf(err) == NotFound }

// IsInvalidArgument reports a bad config, option or parameter.
func IsInvalidArgument(err error) bool { return CodeOf(err) == InvalidArgument }

// IsResourceExhausted reports a model that cannot fit on the device.
func IsResourceExhausted(err error) bool { return CodeOf(err) == ResourceExhausted }

// IsFailedPrecondition reports a leased model, or a closed registry.
func IsFailedPrecondition(err error) bool { return CodeOf(err) == FailedPrecondition }

// IsCancelled reports a call cancelled by its context or its Progress handler.
func IsCancelled(err error) bool { return CodeOf(err) == Cancelled }
