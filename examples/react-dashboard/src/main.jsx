import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { HublinkProvider } from "hublink/react";
import { App } from "./App.jsx";
import "./style.css";

// The server's demo prints a token; order events (rooms) need it: open the page
// with ?token=... (scripts/demo does). Everything else is anonymous.
// `shared`: every tab of the dashboard shares one connection (the panel shows
// which tab holds it and how many share it).
const token = new URLSearchParams(location.search).get("token");
const url = token ? `/ws?token=${encodeURIComponent(token)}` : "/ws";

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <HublinkProvider url={url} shared>
      <App />
    </HublinkProvider>
  </StrictMode>,
);
