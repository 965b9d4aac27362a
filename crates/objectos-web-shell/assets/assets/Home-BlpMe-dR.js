import{j as t,t as e}from"./index-DZeSop7V.js";function r(){return t.jsx("p",{className:"text-muted-foreground",children:e("notFound")})}export{r as default};
