# Dockerfile — epoll-server on Debian 12. The build stage builds the server and plugin with the
# README's script (tests/setup.sh, without the test suite) and installs into /opt/epoll-echo; the
# runtime stage holds that tree and its runtime libraries only.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
# setup.sh installs the compiler and Boost (as root here) and builds with -Werror into build/.
RUN tests/setup.sh --server-only build \
 && cmake --install build --prefix /opt/epoll-echo

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libboost-program-options1.74.0 libstdc++6 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin epoll-echo
COPY --from=build /opt/epoll-echo /opt/epoll-echo
ENV PATH=/opt/epoll-echo/bin:$PATH
USER epoll-echo
EXPOSE 8080
# Exec form for both: the server is PID 1 and gets `docker stop`'s SIGTERM itself, and arguments
# given to `docker run IMAGE ...` replace CMD, so every flag reaches the server.
ENTRYPOINT ["/opt/epoll-echo/bin/epoll-server"]
CMD ["--port", "8080"]
