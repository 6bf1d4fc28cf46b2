"""OpenAI chat-completions JSON as an interchange format, both directions.

- ``reading``: OpenAI-style messages, parts, tools, tool choice and response format ->
  canonical (user input, adapters);
- ``codec``: an OpenAI request body -> a canonical Request, and a canonical Response /
  stream -> the JSON and SSE chunks an OpenAI client expects (what the gateway speaks).

Import from the submodules (this package imports nothing, so reading user input never
loads the codec).
"""
