// The real Kaiban Board (npm kaiban-board) showing one Sprint's KaibanJS team state.
// The team is a plain zustand store fed from the dashboard's JSON and WebSocket push: never a real
// KaibanJS Team, whose subscribers could start LLM work. Telemetry is turned off by the page
// (window.KAIBAN_TELEMETRY_OPT_OUT = true) before this bundle loads.
import React from "react";
import { createRoot } from "react-dom/client";
import { create } from "zustand";
import KaibanBoard from "kaiban-board";
import "kaiban-board/dist/index.css";

const sprintId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop());
const noop = (name) => () => console.info(`kaiban-board asked for ${name}: the sprint is read-only here`);
const actions = {
  setInputs: noop("setInputs"),
  setEnv: noop("setEnv"),
  startWorkflow: noop("startWorkflow"),
  resetWorkflowStateAction: noop("reset"),
  provideFeedback: noop("provideFeedback"),
  validateTask: noop("validateTask"),
  pauseWorkflow: noop("pauseWorkflow"),
  resumeWorkflow: noop("resumeWorkflow"),
  stopWorkflow: noop("stopWorkflow"),
  clearAll: noop("clearAll"),
  subscribeTaskStatusUpdates: () => () => {},
};

// kaiban-board reads KaibanJS internals: an agent's settings live under `agentInstance`.
const withInstance = (agent) => (agent ? { ...agent, agentInstance: { ...agent, llmConfig: agent.llmConfig } } : agent);
const adapt = (state) => ({
  ...state,
  agents: (state.agents || []).map(withInstance),
  tasks: (state.tasks || []).map((task) => ({ ...task, agent: withInstance(task.agent) })),
  workflowLogs: (state.workflowLogs || []).map((log) => ({
    ...log,
    agent: withInstance(log.agent),
    task: log.task ? { ...log.task, agent: withInstance(log.task.agent) } : log.task,
  })),
});

async function main() {
  const response = await fetch(`/api/dashboard/${encodeURIComponent(sprintId)}/kaiban`);
  if (!response.ok) {
    document.getElementById("root").textContent = `Sprint ${sprintId}: ${response.status} ${await response.text()}`;
    return;
  }
  const state = adapt(await response.json());
  const store = create(() => ({ ...state, ...actions }));
  window.kaibanStore = store;
  const uiSettings = { showWelcomeInfo: false, showFullScreen: false, showSimpleShareOption: false };
  createRoot(document.getElementById("root")).render(
    React.createElement(KaibanBoard, { teams: [{ store }], uiSettings })
  );
  openBoardTab();
  connect(store);
}

// The component opens on its setup tab; show the Kanban tab ("Kaiban Board", the second tab) instead.
function openBoardTab(tries = 100) {
  const tabs = document.querySelectorAll('[role="tab"]');
  if (tabs.length >= 2) {
    tabs[1].click();
    document.body.dataset.boardTab = "1";
  } else if (tries > 0) {
    setTimeout(() => openBoardTab(tries - 1), 100);
  }
}

function connect(store) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sprints/${encodeURIComponent(sprintId)}`);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.kaiban) {
      store.setState(adapt(message.kaiban));
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    }
  };
  socket.onclose = () => setTimeout(() => connect(store), 1000);
}

main();
