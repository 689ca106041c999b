"""The HTTP side: Starlette app, routes, the tus service and the Hypercorn launcher."""
