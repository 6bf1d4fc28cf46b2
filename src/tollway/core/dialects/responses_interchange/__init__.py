"""The reverse direction of the Responses API: bodies from clients -> canonical
(:mod:`.reading`), canonical -> the response object and event stream a Responses client
expects (:mod:`.writing`). The gateway's ``POST /v1/responses`` uses both, so a client of
the Responses API reaches any provider. The package imports nothing on purpose: import
the module you need."""
