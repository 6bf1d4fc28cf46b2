"""The MCP client's tools as each agent framework's own tools.

One module per framework, imported only when used (each imports its framework):

- ``tollway.mcp.bridges.langchain.to_langchain_tools(client)``: LangChain
  ``StructuredTool``s (LangGraph, ``create_agent``), sync and async;
- ``tollway.mcp.bridges.crewai.to_crewai_tools(client)``: ``crewai.tools.BaseTool``s;
- ``tollway.mcp.bridges.pydantic_ai.MCPToolset(client)``: a Pydantic AI toolset;
- ``tollway.mcp.bridges.smolagents.to_smolagents_tools(client)``: ``smolagents.Tool``s.

Every bridge calls through the client it was given, so all frameworks share the
client's one long-lived session per server (server state survives between calls and
between agents), and every call is a tool row in the client's ledger, if it has one.
Synchronous frameworks need the client's event loop on another thread: use a
``SyncMCPClient`` (``MCPClient(...).sync()``).
"""
