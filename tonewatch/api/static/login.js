// The login page: trade an API key for the HttpOnly session cookie, then go where we were.

const form = document.getElementById("login");
const input = document.getElementById("api-key");
const error = document.getElementById("login-error");

/** Only a path on this site's pages, so that ?next= cannot send anyone elsewhere. */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") ?? "";
  return /^\/ui\/[A-Za-z0-9/_?=&%.+-]*$/.test(next) && !next.startsWith("/ui/login") ? next : "/ui/feed";
}

function showError(text) {
  error.textContent = text;
  error.classList.remove("hidden");
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (!key) {
    showError("Enter an API key.");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch("/v1/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ api_key: key }),
    });
    if (response.ok) {
      location.assign(nextPage());
      return;
    }
    showError(
      response.status === 401 || response.status === 422
        ? "That key is unknown or revoked."
        : response.status === 429
          ? "Too many attempts; wait a moment."
          : `Sign-in failed (HTTP ${response.status}).`,
    );
  } catch {
    showError("The server did not answer; try again.");
  } finally {
    button.disabled = false;
  }
});

input.focus();
