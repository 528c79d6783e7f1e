"""The HTTP backend on real sockets: a real uvicorn server and a stdlib HTTP client."""
