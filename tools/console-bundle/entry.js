// The browser bundle of the console's editor: Yjs and its y-websocket provider, as one
// global (window.OrbitstoreYjs) so the console stays plain JavaScript.
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";

window.OrbitstoreYjs = { Y, WebsocketProvider };
